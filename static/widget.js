/* Parley loader: adds a launcher and the chat iframe to the host page.
   It defines window.Parley and elements whose ids start with "parley-";
   nothing else on the host page is touched. Protocol: docs/protocol.md. */
(function (w, d) {
  "use strict";
  var prev = w.Parley;
  if (prev && prev.parley) return; // loaded twice
  var script = d.currentScript;
  if (!script) return;
  var ORIGIN = new URL(script.src).origin;
  var KEYS = ["user_id", "email", "name", "user_hash", "visitor_token"];
  var settings = null, frame = null, launcher = null, badge = null, wrap = null;
  var nonce = null, open = false, ready = false, unread = 0;
  var readyFns = [], unreadFns = [];

  function el(tag, id, style) {
    var e = d.createElement(tag);
    e.id = id;
    for (var k in style) e.style[k] = style[k];
    return e;
  }

  function vtKey() { return "parley:vt:" + settings.app_id; }

  function storage(op, value) {
    try {
      if (op === "get") return w.localStorage.getItem(vtKey());
      if (op === "set") w.localStorage.setItem(vtKey(), value);
      if (op === "del") w.localStorage.removeItem(vtKey());
    } catch (e) { /* storage blocked: the visitor is new on every load */ }
    return null;
  }

  // Messages go only to Parley's exact origin, never to "*".
  function post(msg) {
    if (!frame || !frame.contentWindow) return;
    msg.parley = 1;
    frame.contentWindow.postMessage(msg, ORIGIN);
  }

  function identity() {
    var out = {};
    for (var i = 0; i < KEYS.length; i++) {
      var v = settings[KEYS[i]];
      if (typeof v === "string" && v !== "") out[KEYS[i]] = v;
    }
    if (!out.visitor_token) {
      var vt = storage("get");
      if (vt) out.visitor_token = vt;
    }
    return out;
  }

  function onMessage(e) {
    // Only our own iframe, served from Parley's origin, is listened to.
    if (!frame || e.source !== frame.contentWindow || e.origin !== ORIGIN) return;
    var m = e.data;
    if (!m || m.parley !== 1 || typeof m.type !== "string") return;
    if (m.type === "ready" && typeof m.nonce === "string") {
      nonce = m.nonce;
      // Not location.href: a query or fragment can hold secrets.
      post({ type: "identity", nonce: nonce, settings: identity(), page: location.origin + location.pathname });
      if (open) post({ type: "visibility", nonce: nonce, open: true });
    } else if (m.type === "session") {
      if (typeof m.visitor_token === "string") storage("set", m.visitor_token);
      if (!ready) {
        ready = true;
        while (readyFns.length) call(readyFns.shift());
      }
    } else if (m.type === "unread" && typeof m.count === "number") {
      setUnread(m.count);
    } else if (m.type === "close") {
      hide();
    }
  }

  function call(fn, arg) {
    try { fn(arg); } catch (err) { setTimeout(function () { throw err; }); }
  }

  function setUnread(n) {
    if (n === unread) return;
    unread = n;
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.style.display = n > 0 ? "block" : "none";
    for (var i = 0; i < unreadFns.length; i++) call(unreadFns[i], n);
  }

  function boot(s) {
    if (frame) shutdown(true);
    if (!s || typeof s.app_id !== "string" || !/^app_[a-z2-7]+$/.test(s.app_id)) {
      if (w.console) w.console.error("Parley: boot needs a valid app_id");
      return;
    }
    settings = {};
    for (var k in s) settings[k] = s[k];
    launcher = el("button", "parley-launcher", {
      position: "fixed", right: "20px", bottom: "20px", width: "56px", height: "56px", borderRadius: "50%",
      border: "0", background: "#2457d6", color: "#fff", font: "24px/56px sans-serif", cursor: "pointer",
      zIndex: "2147483000", boxShadow: "0 4px 12px rgba(0,0,0,.25)", padding: "0"
    });
    launcher.type = "button";
    launcher.setAttribute("data-testid", "parley-launcher");
    launcher.setAttribute("aria-label", "Open chat");
    launcher.textContent = "\u{1F4AC}";
    badge = el("span", "parley-badge", {
      position: "absolute", top: "-4px", right: "-4px", minWidth: "20px", height: "20px", borderRadius: "10px",
      background: "#d62424", font: "bold 12px/20px sans-serif", display: "none", padding: "0 4px"
    });
    badge.setAttribute("data-testid", "parley-unread");
    launcher.appendChild(badge);
    launcher.onclick = function () { open ? hide() : show(); };
    wrap = el("div", "parley-frame-wrap", {
      position: "fixed", right: "20px", bottom: "88px", width: "370px", height: "560px",
      maxWidth: "calc(100vw - 40px)", maxHeight: "calc(100vh - 108px)", zIndex: "2147483000",
      boxShadow: "0 8px 30px rgba(0,0,0,.3)", borderRadius: "12px", overflow: "hidden", display: "none"
    });
    frame = el("iframe", "parley-frame", { width: "100%", height: "100%", border: "0" });
    frame.title = "Chat";
    // The parent origin is a hint only; the frame checks it against the
    // app's allowlist and every message against event.origin.
    frame.src = ORIGIN + "/w/" + encodeURIComponent(settings.app_id) + "#origin=" + encodeURIComponent(location.origin);
    wrap.appendChild(frame);
    d.body.appendChild(wrap);
    d.body.appendChild(launcher);
  }

  function update(s) {
    if (!settings) return boot(s);
    for (var k in s) settings[k] = s[k];
    if (nonce) post({ type: "identity", nonce: nonce, settings: identity(), page: location.origin + location.pathname });
  }

  // shutdown forgets the user (call it on logout): the visitor token is
  // deleted and the frame removed, so the next boot starts fresh.
  function shutdown(keep) {
    if (!settings) return;
    post({ type: "shutdown", nonce: nonce });
    if (!keep) storage("del");
    if (wrap) wrap.remove();
    if (launcher) launcher.remove();
    settings = frame = launcher = badge = wrap = nonce = null;
    open = ready = false;
    unread = 0;
  }

  function show() {
    if (!wrap) return;
    open = true;
    wrap.style.display = "block";
    launcher.setAttribute("aria-label", "Close chat");
    if (nonce) post({ type: "visibility", nonce: nonce, open: true });
  }

  function hide() {
    if (!wrap) return;
    open = false;
    wrap.style.display = "none";
    launcher.setAttribute("aria-label", "Open chat");
    if (nonce) post({ type: "visibility", nonce: nonce, open: false });
  }

  var commands = {
    boot: boot, update: update, shutdown: function () { shutdown(false); }, show: show, hide: hide,
    onUnreadCountChange: function (fn) { if (typeof fn === "function") unreadFns.push(fn); },
    onReady: function (fn) { if (typeof fn !== "function") return; ready ? call(fn) : readyFns.push(fn); }
  };

  function Parley(cmd, arg) {
    var f = commands[cmd];
    if (f) return f(arg);
    if (w.console) w.console.warn("Parley: unknown command " + cmd);
  }
  Parley.parley = 1;

  w.addEventListener("message", onMessage);
  var queued = prev && prev.q;
  w.Parley = Parley;
  function start() {
    if (w.parleySettings && !(queued && queued.length && queued[0][0] === "boot")) boot(w.parleySettings);
    if (queued) for (var i = 0; i < queued.length; i++) Parley.apply(null, queued[i]);
  }
  d.body ? start() : d.addEventListener("DOMContentLoaded", start);
})(window, document);
