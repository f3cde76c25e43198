/* Parley loader: window.Parley and the launcher. widget-chat.js, loaded
   when needed, adds the chat. See docs/protocol.md. */
(function (w, d) {
  "use strict";
  var prev = w.Parley;
  if (prev && prev.parley) return; // loaded twice
  var script = d.currentScript;
  if (!script) return;
  // Shared with widget-chat.js (Parley.h)
  var S = { origin: new URL(script.src).origin, settings: null, open: false,
    setOpen: setOpen, setUnread: setUnread, onSession: onSession, store: store };
  var launcher = null, badge = null, chat = null, loading = null;
  var ready = false, unread = 0, readyFns = [], unreadFns = [];

  // Keys: vt visitor token, c chat used here
  function store(op, k, v) {
    try {
      return w.localStorage[op + "Item"]("parley:" + k + ":" + S.settings.app_id, v);
    } catch (e) { /* storage blocked */ }
  }

  function load() {
    if (chat || loading || !S.settings) return;
    loading = d.createElement("script");
    loading.src = S.origin + "/static/widget-chat.js";
    loading.onerror = function () { loading.remove(); loading = null; };
    d.head.appendChild(loading);
  }

  function call(fn, arg) {
    try { fn(arg); } catch (err) { setTimeout(function () { throw err; }); }
  }

  function onSession() {
    if (ready) return;
    ready = true;
    while (readyFns.length) call(readyFns.shift());
  }

  function setUnread(n) {
    if (n === unread || !badge) return;
    unread = n;
    if (n > 0) store("set", "c", "1");
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.style.display = n > 0 ? "block" : "none";
    for (var i = 0; i < unreadFns.length; i++) call(unreadFns[i], n);
  }

  function el(tag, id, css) {
    var e = d.createElement(tag);
    e.id = id;
    e.style.cssText = css;
    return e;
  }

  function boot(s) {
    if (S.settings) shutdown(true);
    if (!s || typeof s.app_id !== "string" || !/^app_[a-z2-7]+$/.test(s.app_id)) {
      if (w.console) w.console.error("Parley: boot needs a valid app_id");
      return;
    }
    S.settings = {};
    for (var k in s) S.settings[k] = s[k];
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
    launcher.onclick = function () { setOpen(!S.open); };
    d.body.appendChild(launcher);
    if (chat) chat.boot();
    else if (store("get", "c") || readyFns.length || unreadFns.length) load();
  }

  function update(s) {
    if (!S.settings) return boot(s);
    for (var k in s) S.settings[k] = s[k];
    if (chat) chat.update();
  }

  // keep: no logout, a boot replaces us
  function shutdown(keep) {
    if (!S.settings) return;
    launcher.remove();
    if (chat) chat.shutdown(keep);
    if (!keep) { store("remove", "vt"); store("remove", "c"); }
    S.settings = launcher = badge = null;
    S.open = ready = false;
    unread = 0;
  }

  function setOpen(on) {
    if (!S.settings) return;
    S.open = on;
    launcher.setAttribute("aria-label", on ? "Close chat" : "Open chat");
    if (on) { store("set", "c", "1"); load(); }
    if (chat) chat.show(on);
  }

  var commands = {
    boot: boot, update: update, shutdown: function () { shutdown(false); },
    show: function () { setOpen(true); }, hide: function () { setOpen(false); },
    onUnreadCountChange: function (fn) { if (typeof fn === "function") { unreadFns.push(fn); load(); } },
    onReady: function (fn) { if (typeof fn !== "function") return; if (ready) call(fn); else { readyFns.push(fn); load(); } }
  };

  function Parley(cmd, arg) {
    var f = commands[cmd];
    if (f) return f(arg);
    if (w.console) w.console.warn("Parley: unknown command " + cmd);
  }
  Parley.parley = 1;
  Parley.h = function (make) {
    if (chat) return;
    chat = make(S);
    if (S.settings) chat.boot();
  };

  var queued = prev && prev.q;
  w.Parley = Parley;
  function start() {
    if (w.parleySettings && !(queued && queued.length && queued[0][0] === "boot")) boot(w.parleySettings);
    if (queued) for (var i = 0; i < queued.length; i++) Parley.apply(null, queued[i]);
  }
  d.body ? start() : d.addEventListener("DOMContentLoaded", start);
})(window, document);
