/* Parley chat, the rest of the loader: /widget.js adds this script from
   Parley's origin when the chat is opened, when it may have unread replies
   (the launcher saw them before in this browser), or when the page
   registered onReady or onUnreadCountChange. It adds the chat iframe and
   talks to it over a private MessageChannel. It defines nothing global and
   adds only elements whose ids start with "parley-". The loader hands it
   its state through Parley.h; both run in the host page, which trusts
   them. Protocol: docs/protocol.md. */
(function (w, d) {
  "use strict";
  var P = w.Parley;
  if (!P || typeof P.h !== "function") return;
  var KEYS = ["user_id", "email", "name", "user_hash", "user_jwt", "visitor_token"];
  var S = null, ORIGIN = "", frame = null, wrap = null, port = null;

  function el(tag, id, css) {
    var e = d.createElement(tag);
    e.id = id;
    e.style.cssText = css;
    return e;
  }

  function post(msg) {
    if (!port) return;
    msg.parley = 1;
    port.postMessage(msg);
  }

  // Not location.href: a query or fragment can hold secrets.
  function sendIdentity() {
    post({ type: "identity", settings: identity(), page: location.origin + location.pathname });
  }

  function identity() {
    var out = {};
    for (var i = 0; i < KEYS.length; i++) {
      var v = S.settings[KEYS[i]];
      if (typeof v === "string" && v !== "") out[KEYS[i]] = v;
    }
    if (!out.visitor_token) {
      var vt = S.store("get", "vt");
      if (vt) out.visitor_token = vt;
    }
    return out;
  }

  // Each new frame document (a reload too) gets a new private channel.
  function onReady(e) {
    var m = e.data;
    if (!frame || e.source !== frame.contentWindow || e.origin !== ORIGIN) return;
    if (!m || m.parley !== 1 || m.type !== "ready" || typeof m.nonce !== "string") return;
    if (port) port.close();
    var ch = new MessageChannel();
    port = ch.port1;
    port.onmessage = onPort;
    frame.contentWindow.postMessage({ parley: 1, type: "connect", nonce: m.nonce }, ORIGIN, [ch.port2]);
    sendIdentity();
    if (S.open) post({ type: "visibility", open: true });
  }

  function onPort(e) {
    var m = e.data;
    if (m.type === "session") {
      if (typeof m.visitor_token === "string") S.store("set", "vt", m.visitor_token);
      S.onSession();
    } else if (m.type === "unread" && typeof m.count === "number") {
      S.setUnread(m.count);
    } else if (m.type === "close") {
      S.setOpen(false);
    }
  }

  // boot adds the frame for the loader's current settings, shown if the
  // chat is open already (the click that opened it loaded this script).
  function boot() {
    wrap = el("div", "parley-frame-wrap", "position:fixed;right:20px;bottom:88px;width:370px;height:560px;" +
      "max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);z-index:2147483000;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3);border-radius:12px;overflow:hidden;display:none");
    frame = el("iframe", "parley-frame", "width:100%;height:100%;border:0");
    frame.title = "Chat";
    // The parent origin is a hint only; the frame checks it against the
    // app's allowlist and every message against event.origin.
    frame.src = ORIGIN + "/w/" + encodeURIComponent(S.settings.app_id) + "#origin=" + encodeURIComponent(location.origin);
    wrap.appendChild(frame);
    show(S.open);
    d.body.appendChild(wrap);
  }

  // shutdown hides the chat at once. Unless keep (a boot replacing this
  // one), the frame ends the session on the server first (we wait 1 s at
  // most); the loader deletes the visitor token.
  function shutdown(keep) {
    if (!wrap) return;
    var p = port, old = wrap;
    function remove() {
      if (p) p.close();
      old.remove();
    }
    old.style.display = "none";
    old.id = frame.id = ""; // a boot may add new ones meanwhile
    if (p && !keep) {
      p.onmessage = function (e) { if (e.data.type === "shutdown_done") remove(); };
      post({ type: "shutdown" });
      setTimeout(remove, 1000);
    } else remove();
    frame = wrap = port = null;
  }

  function show(on) {
    if (!wrap) return;
    wrap.style.display = on ? "block" : "none";
    post({ type: "visibility", open: on });
  }

  w.addEventListener("message", onReady);
  P.h(function (shared) {
    S = shared;
    ORIGIN = S.origin;
    return { boot: boot, update: sendIdentity, shutdown: shutdown, show: show };
  });
})(window, document);
