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
  var KEYS = ["user_id", "email", "name", "user_hash", "user_jwt", "visitor_token"];
  var settings = null, frame = null, launcher = null, badge = null, wrap = null;
  var port = null, open = false, ready = false, unread = 0;
  var readyFns = [], unreadFns = [];

  function el(tag, id, css) {
    var e = d.createElement(tag);
    e.id = id;
    e.style.cssText = css;
    return e;
  }

  // storage("get" | "set" | "remove", value) keeps the visitor token.
  function storage(op, value) {
    try {
      return w.localStorage[op + "Item"]("parley:vt:" + settings.app_id, value);
    } catch (e) { /* storage blocked: the visitor is new on every load */ }
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
      var v = settings[KEYS[i]];
      if (typeof v === "string" && v !== "") out[KEYS[i]] = v;
    }
    if (!out.visitor_token) {
      var vt = storage("get");
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
    if (open) post({ type: "visibility", open: true });
  }

  function onPort(e) {
    var m = e.data;
    if (m.type === "session") {
      if (typeof m.visitor_token === "string") storage("set", m.visitor_token);
      if (!ready) {
        ready = true;
        while (readyFns.length) call(readyFns.shift());
      }
    } else if (m.type === "unread" && typeof m.count === "number") {
      setUnread(m.count);
    } else if (m.type === "close") {
      setOpen(false);
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
    launcher = el("button", "parley-launcher", "position:fixed;right:20px;bottom:20px;width:56px;height:56px;" +
      "border-radius:50%;border:0;background:#2457d6;color:#fff;font:24px/56px sans-serif;cursor:pointer;" +
      "z-index:2147483000;box-shadow:0 4px 12px rgba(0,0,0,.25);padding:0");
    launcher.type = "button";
    launcher.setAttribute("data-testid", "parley-launcher");
    launcher.setAttribute("aria-label", "Open chat");
    launcher.textContent = "\u{1F4AC}";
    badge = el("span", "parley-badge", "position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;" +
      "border-radius:10px;background:#d62424;font:bold 12px/20px sans-serif;display:none;padding:0 4px");
    badge.setAttribute("data-testid", "parley-unread");
    launcher.appendChild(badge);
    launcher.onclick = function () { setOpen(!open); };
    wrap = el("div", "parley-frame-wrap", "position:fixed;right:20px;bottom:88px;width:370px;height:560px;" +
      "max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);z-index:2147483000;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3);border-radius:12px;overflow:hidden;display:none");
    frame = el("iframe", "parley-frame", "width:100%;height:100%;border:0");
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
    sendIdentity();
  }

  // shutdown forgets the user (call it on logout): the frame ends the
  // session on the server (we wait 1 s at most) and the visitor token is
  // deleted, so the next boot starts fresh.
  function shutdown(keep) {
    if (!settings) return;
    var p = port, old = wrap;
    function remove() {
      if (p) p.close();
      old.remove();
    }
    old.style.display = "none";
    old.id = frame.id = ""; // a boot may add new ones meanwhile
    launcher.remove();
    if (p && !keep) {
      p.onmessage = function (e) { if (e.data.type === "shutdown_done") remove(); };
      post({ type: "shutdown" });
      setTimeout(remove, 1000);
    } else remove();
    if (!keep) storage("remove");
    settings = frame = launcher = badge = wrap = port = null;
    open = ready = false;
    unread = 0;
  }

  function setOpen(on) {
    if (!wrap) return;
    open = on;
    wrap.style.display = on ? "block" : "none";
    launcher.setAttribute("aria-label", on ? "Close chat" : "Open chat");
    post({ type: "visibility", open: on });
  }

  var commands = {
    boot: boot, update: update, shutdown: function () { shutdown(false); },
    show: function () { setOpen(true); }, hide: function () { setOpen(false); },
    onUnreadCountChange: function (fn) { if (typeof fn === "function") unreadFns.push(fn); },
    onReady: function (fn) { if (typeof fn !== "function") return; ready ? call(fn) : readyFns.push(fn); }
  };

  function Parley(cmd, arg) {
    var f = commands[cmd];
    if (f) return f(arg);
    if (w.console) w.console.warn("Parley: unknown command " + cmd);
  }
  Parley.parley = 1;

  w.addEventListener("message", onReady);
  var queued = prev && prev.q;
  w.Parley = Parley;
  function start() {
    if (w.parleySettings && !(queued && queued.length && queued[0][0] === "boot")) boot(w.parleySettings);
    if (queued) for (var i = 0; i < queued.length; i++) Parley.apply(null, queued[i]);
  }
  d.body ? start() : d.addEventListener("DOMContentLoaded", start);
})(window, document);
