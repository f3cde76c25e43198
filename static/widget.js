/* Parley loader: window.Parley and the launcher. widget-chat.js, loaded
   when needed, adds the chat. See docs/protocol.md. Served minified; the
   loader's budget is 2 KB gzipped. */
(function (w, d) {
  "use strict";
  var prev = w.Parley;
  if (prev && prev.parley) return; // loaded twice
  var script = d.currentScript;
  if (!script) return;
  // Shared with widget-chat.js (Parley.h). look is the app's appearance
  // from /api/widget/config.js; phone (set by widget-chat.js) says the
  // open chat takes the whole screen.
  var S = { origin: new URL(script.src).origin, settings: null, open: false, look: null, phone: false,
    setOpen: setOpen, setUnread: setUnread, onSession: onSession, store: store, tokenFn: null, label: label };
  var launcher = null, badge = null, icon = null, text = null, chat = null, loading = null, booting = 0;
  var ready = false, unread = 0, readyFns = [], unreadFns = [];
  // Chat bubble, and the close cross the launcher becomes.
  var ICONS = ["M4 5h16v11H9l-5 4z", "M6 6l12 12M18 6L6 18"], SVG = "http://www.w3.org/2000/svg";

  // Keys: vt visitor token, c chat used here
  function store(op, k, v) {
    try {
      return w.localStorage[op + "Item"]("parley:" + k + ":" + S.settings.app_id, v);
    } catch (e) { /* storage blocked */ }
  }

  function load() {
    if (chat || loading || !S.look) return;
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
    badge.textContent = n > 99 ? "99+" : n;
    badge.style.display = n > 0 ? "block" : "none";
    label();
    for (var i = 0; i < unreadFns.length; i++) call(unreadFns[i], n);
  }

  // label says what the launcher does, and how many replies are unread.
  function label() {
    if (!launcher) return;
    var t = S.look.strings;
    // The visible label is part of the name (WCAG 2.5.3).
    attr(launcher, "aria-label", (S.open ? t.close : S.look.launcher_label || t.open) + (unread ? " (" + t.unread.replace("{n}", unread) + ")" : ""));
    attr(launcher, "aria-expanded", S.open);
    attr(icon, "d", ICONS[S.open ? 1 : 0]);
    if (text) text.style.display = S.open ? "none" : "";
    // On a phone the open chat has its own close button, and covers this.
    launcher.style.display = S.open && S.phone ? "none" : "flex";
  }

  function attr(e, k, v) { e.setAttribute(k, v); }
  function warn(m) { if (w.console) w.console.error("Parley: " + m); }

  function el(tag, id, css) {
    var e = d.createElement(tag);
    e.id = id;
    e.style.cssText = css;
    return e;
  }

  // boot asks Parley for the app's look first: a page whose origin the app
  // does not allow gets no launcher, and its owner a line in the console.
  function boot(s) {
    if (S.settings) shutdown(true);
    if (!s || typeof s.app_id !== "string" || !/^app_[a-z2-7]+$/.test(s.app_id)) {
      warn("boot needs a valid app_id");
      return;
    }
    S.settings = {};
    for (var k in s) S.settings[k] = s[k];
    config(show);
  }

  // config loads the look (and the launcher's words, in the locale the
  // settings name, if any) and hands it to then, unless a boot or a
  // shutdown came meanwhile. It is a script calling Parley.c: a host page
  // whose CSP allows Parley's scripts needs nothing more for it.
  // A script's load event comes right after it ran, so the answer
  // Parley.c keeps is this request's; a newer boot or config wins.
  var answer = null;
  function config(then) {
    var mine = ++booting, l = S.settings.locale || "", sc = d.createElement("script");
    sc.src = S.origin + "/api/widget/config.js?app_id=" + S.settings.app_id + "&origin=" + encodeURIComponent(location.origin) +
      "&locale=" + encodeURIComponent(l);
    sc.onload = sc.onerror = function () {
      var j = answer;
      answer = null;
      sc.remove();
      if (mine !== booting || !S.settings) return;
      if (!j) warn("the chat is not shown: " + S.origin + " could not be reached");
      else if (j.error) warn("the chat is not shown: " + j.error.message);
      else then(j);
    };
    d.head.appendChild(sc);
  }

  function show(look) {
    S.look = look;
    // The server writes the launcher's styles from the app's look (its
    // colour, the text colour picked for it, its corner).
    launcher = el("button", "parley-launcher", look.launcher_css);
    launcher.type = "button";
    attr(launcher, "data-testid", "parley-launcher");
    var svg = d.createElementNS(SVG, "svg");
    attr(svg, "viewBox", "0 0 24 24");
    svg.style.cssText = "width:26px;height:26px;fill:none;stroke:currentColor;stroke-width:2;stroke-linejoin:round";
    icon = d.createElementNS(SVG, "path");
    svg.appendChild(icon);
    launcher.appendChild(svg);
    // The button's aria-label names it (with the unread count); what it
    // shows is for the eye.
    text = null;
    if (look.launcher_label) {
      text = d.createElement("span");
      text.textContent = look.launcher_label;
      launcher.appendChild(text);
    }
    badge = el("span", "parley-badge", look.badge_css);
    attr(badge, "data-testid", "parley-unread");
    launcher.appendChild(badge);
    launcher.onclick = function () { setOpen(!S.open); };
    label();
    d.body.appendChild(launcher);
    if (chat) chat.boot();
    else if (S.open || store("get", "c") || readyFns.length || unreadFns.length) load();
  }

  function update(s) {
    if (!S.settings) return boot(s);
    var was = S.settings.locale;
    for (var k in s) S.settings[k] = s[k];
    // A new language: the launcher's words again (the whole look, if the
    // first answer has not come yet).
    if (S.settings.locale !== was) config(S.look ? function (look) { S.look.strings = look.strings; label(); } : show);
    if (chat) chat.update();
  }

  // keep: no logout, a boot replaces us
  function shutdown(keep) {
    if (!S.settings) return;
    booting++;
    if (launcher) launcher.remove();
    if (chat) chat.shutdown(keep);
    if (!keep) { store("remove", "vt"); store("remove", "c"); }
    S.settings = S.look = launcher = badge = null;
    S.open = ready = false;
    unread = 0;
  }

  // setOpen opens or closes the chat; closing gives the keyboard back to
  // the launcher, wherever it was.
  function setOpen(on, focus) {
    if (!launcher) { if (S.settings) S.open = on; return; }
    S.open = on;
    label();
    if (on) { store("set", "c", "1"); load(); }
    if (chat) chat.show(on);
    if (!on && focus !== false) launcher.focus();
  }

  var commands = {
    boot: boot, update: update, shutdown: function () { shutdown(false); },
    show: function () { setOpen(true); }, hide: function () { setOpen(false, false); },
    onUnreadCountChange: function (fn) { if (typeof fn === "function") { unreadFns.push(fn); load(); } },
    onReady: function (fn) { if (typeof fn !== "function") return; if (ready) call(fn); else { readyFns.push(fn); load(); } },
    onTokenNeeded: function (fn) { S.tokenFn = fn; }
  };

  function Parley(cmd, arg) {
    var f = commands[cmd];
    if (f) return f(arg);
    warn("unknown command " + cmd);
  }
  Parley.parley = 1;
  Parley.c = function (j) { answer = j; };
  Parley.h = function (make) {
    if (chat) return;
    chat = make(S);
    if (S.look) chat.boot();
  };

  var queued = prev && prev.q;
  w.Parley = Parley;
  function start() {
    if (w.parleySettings && !(queued && queued.length && queued[0][0] === "boot")) boot(w.parleySettings);
    if (queued) for (var i = 0; i < queued.length; i++) Parley.apply(null, queued[i]);
  }
  d.body ? start() : d.addEventListener("DOMContentLoaded", start);
})(window, document);
