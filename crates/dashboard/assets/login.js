// The login form: posts the password as JSON with the page's CSRF token, then opens the dashboard.
"use strict";
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const field = document.getElementById("password");
  const out = document.getElementById("login-error");
  out.textContent = "";
  try {
    const r = await fetch("/login", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-csrf-token": document.querySelector('meta[name="csrf-token"]').content,
      },
      body: JSON.stringify({ password: field.value }),
    });
    field.value = "";
    if (r.ok) { location.href = "/"; return; }
    const body = await r.json().catch(() => ({}));
    out.textContent = body.error || ("login failed: HTTP " + r.status);
  } catch (err) {
    out.textContent = "cannot reach the dashboard: " + err;
  }
});
