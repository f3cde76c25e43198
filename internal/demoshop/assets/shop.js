// The snippet, as a file so the shop's CSP needs no 'unsafe-inline': the
// settings the backend rendered as JSON, then (in the page) the loader.
window.parleySettings = JSON.parse(document.getElementById("parley-settings").textContent);
var logout = document.getElementById("logout");
if (logout) logout.addEventListener("submit", function () { window.Parley && window.Parley("shutdown"); });
