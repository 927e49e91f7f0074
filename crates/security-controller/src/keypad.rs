//! The keypad: panel commands in the order they came, their codes checked off the panel's loop.
//!
//! An Argon2id check costs 40–60 ms and 19 MiB by design. Done on the loop, a flood of wrong codes
//! on `panel/set` held every sensor reading behind it (200 wrong codes delayed an intrusion's siren
//! by 200–500 ms). Here one thread of its own checks one code at a time, while the loop goes on
//! reading sensors; commands still reach the [`Panel`](crate::panel::Panel) in the order they were
//! sent. While the panel is locked out a code is not checked at all, so a brute-force flood costs
//! at most `max_wrong_codes` checks per lockout.
//!
//! The code itself goes from the command to the thread and is dropped there: it is never logged,
//! never kept, and the panel only ever sees who it belonged to ([`Code`]).

use std::collections::VecDeque;
use std::sync::Arc;

use protocol::{PanelAction, PanelCommand};
use tokio::sync::mpsc;

use crate::config::User;

/// What a command's code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No code was given.
    Missing,
    /// A code that belongs to no user.
    Wrong,
    /// The code of `users[i]`.
    User(usize),
    /// Not checked: the keypad was locked out when the command's turn came.
    Unchecked,
}

/// A panel command with its code already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub action: PanelAction,
    pub force: bool,
    pub code: Code,
}

/// A command and the area it was sent to (none: the whole house, or a panel without areas).
pub type ForArea<T> = (Option<String>, T);

/// Whose code `code` is: one Argon2id verification per user until one matches. Slow on purpose.
pub fn identify(users: &[User], code: Option<&str>) -> Code {
    match code {
        None => Code::Missing,
        Some(code) => users.iter().position(|u| u.owns(code)).map_or(Code::Wrong, Code::User),
    }
}

/// The queue of commands and the thread that checks their codes.
pub struct Keypad {
    queue: VecDeque<ForArea<PanelCommand>>,
    in_flight: bool,
    jobs: std::sync::mpsc::Sender<ForArea<PanelCommand>>,
    checked: mpsc::UnboundedReceiver<ForArea<Command>>,
}

impl Keypad {
    /// Starts the checking thread; it ends when the keypad is dropped.
    pub fn start(users: Vec<User>) -> std::io::Result<Keypad> {
        let (jobs, inbox) = std::sync::mpsc::channel::<ForArea<PanelCommand>>();
        let (done, checked) = mpsc::unbounded_channel();
        let users = Arc::new(users);
        std::thread::Builder::new().name("keypad".into()).spawn(move || {
            // The keypad thread runs at the lowest priority: an Argon2id check is 50 ms of a
            // core, and on a two-core machine a brute-force flood would otherwise take CPU from
            // the panel's loop and the broker, which carry the intrusion.
            device_runtime::process::lower_this_thread(19);
            while let Ok((area, command)) = inbox.recv() {
                let code = identify(&users, command.code.as_deref());
                let checked = Command { action: command.action, force: command.force, code };
                if done.send((area, checked)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Keypad { queue: VecDeque::new(), in_flight: false, jobs, checked })
    }

    /// Queues a command behind those already waiting.
    pub fn push(&mut self, area: Option<String>, command: PanelCommand) {
        self.queue.push_back((area, command));
    }

    /// Commands waiting, the one being checked included.
    pub fn waiting(&self) -> usize {
        self.queue.len() + usize::from(self.in_flight)
    }

    /// The next command the panel can take now, if its turn has come and it needs no check: one
    /// without a code, or any while `locked_out`. A command with a code goes to the checking
    /// thread instead and comes back through [`Keypad::checked`].
    pub fn next_ready(&mut self, locked_out: bool) -> Option<ForArea<Command>> {
        if self.in_flight {
            return None;
        }
        let (area, command) = self.queue.pop_front()?;
        let code = match (&command.code, locked_out) {
            (None, _) => Code::Missing,
            (Some(_), true) => Code::Unchecked,
            (Some(_), false) => {
                match self.jobs.send((area, command)) {
                    Ok(()) => self.in_flight = true,
                    // The thread is gone (it never panics; this is shutdown): nothing to check with.
                    Err(_) => tracing::error!("the keypad thread has stopped; a command was dropped"),
                }
                return None;
            }
        };
        Some((area, Command { action: command.action, force: command.force, code }))
    }

    /// The next command whose code has been checked. Pending forever while none is being checked.
    pub async fn checked(&mut self) -> ForArea<Command> {
        if !self.in_flight {
            return std::future::pending().await;
        }
        match self.checked.recv().await {
            Some(command) => {
                self.in_flight = false;
                command
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    fn users() -> Vec<User> {
        let hash = |pin| codes::hash_pin_with(pin, codes::test_params()).unwrap();
        vec![
            User::new("alice", hash("1234")),
            User {
                tag_hash: Some(codes::hash_tag_with("04A2B3C4", codes::test_params()).unwrap()),
                ..User::new("bob", hash("5678"))
            },
        ]
    }

    fn command(action: PanelAction, code: Option<&str>) -> PanelCommand {
        PanelCommand { action, code: code.map(str::to_owned), force: false }
    }

    #[test]
    fn codes_are_identified_by_user() {
        let users = users();
        assert_eq!(identify(&users, None), Code::Missing);
        assert_eq!(identify(&users, Some("1234")), Code::User(0));
        assert_eq!(identify(&users, Some("5678")), Code::User(1));
        assert_eq!(identify(&users, Some("0000")), Code::Wrong);
        assert_eq!(identify(&users, Some("04A2B3C4")), Code::User(1), "a tag is bob's as his PIN is");
    }

    #[tokio::test]
    async fn commands_keep_their_order_and_locked_out_codes_are_not_checked() {
        let mut keypad = Keypad::start(users()).unwrap();
        keypad.push(None, command(PanelAction::Disarm, Some("5678")));
        keypad.push(Some("garage".into()), command(PanelAction::ArmAway, None));
        assert_eq!(keypad.next_ready(false), None, "the first goes to the thread");
        assert_eq!(keypad.next_ready(false), None, "the second waits its turn");
        assert_eq!(keypad.waiting(), 2);
        let (area, first) = keypad.checked().await;
        assert_eq!((area, first.action, first.code), (None, PanelAction::Disarm, Code::User(1)));
        let (area, second) = keypad.next_ready(false).unwrap();
        assert_eq!(area.as_deref(), Some("garage"), "the area travels with its command");
        assert_eq!((second.action, second.code), (PanelAction::ArmAway, Code::Missing));

        keypad.push(None, command(PanelAction::Disarm, Some("0000")));
        let (_, locked) = keypad.next_ready(true).unwrap();
        assert_eq!(locked.code, Code::Unchecked);
        assert_eq!(keypad.waiting(), 0);
    }
}
