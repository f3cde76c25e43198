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
  var S = null, ORIGIN = "", frame = null, wrap = null, port = null, shown = false;

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

  // Not location.href: a query or fragment can hold secrets. The locale
  // travels beside the identity: it is the page's choice, not the user's
  // claim.
  function sendIdentity() {
    var l = S.settings.locale;
    post({ type: "identity", settings: identity(), page: location.origin + location.pathname, locale: typeof l === "string" ? l : "" });
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
    } else if (m.type === "token_needed") {
      newToken();
    }
  }

  // newToken asks the page for a fresh identity JWT (Parley('onTokenNeeded',
  // fn)): the one the frame had was spent. Without an answer the frame is
  // told to give up.
  function newToken() {
    var p = null, asked = S.settings;
    try { if (typeof S.tokenFn === "function") p = S.tokenFn(); } catch (e) { p = null; }
    Promise.resolve(p).then(function (jwt) {
      // A shutdown or another boot meanwhile: this token is not theirs.
      if (S.settings !== asked) return;
      if (typeof jwt === "string" && jwt) {
        S.settings.user_jwt = jwt;
        sendIdentity();
      } else post({ type: "token", jwt: null });
    }, function () { if (S.settings === asked) post({ type: "token", jwt: null }); });
  }

  // boot adds the frame for the loader's current settings, shown if the
  // chat is open already (the click that opened it loaded this script).
  function boot() {
    wrap = el("div", "parley-frame-wrap", "position:fixed;z-index:2147483000;overflow:hidden;display:none;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3)");
    frame = el("iframe", "parley-frame", "width:100%;height:100%;border:0;display:block");
    frame.title = S.look.team_name;
    // The parent origin is a hint only; the frame checks it against the
    // app's allowlist and every message against event.origin.
    frame.src = ORIGIN + "/w/" + encodeURIComponent(S.settings.app_id) + "#origin=" + encodeURIComponent(location.origin);
    wrap.appendChild(frame);
    d.body.appendChild(wrap);
    d.getElementById("parley-launcher").setAttribute("aria-controls", "parley-frame-wrap");
    show(S.open);
  }

  // place lays the chat out: a panel above the launcher, or on a phone the
  // whole screen, above the on-screen keyboard and inside the safe areas.
  function place() {
    var side = S.look.position === "left" ? "left" : "right", v = w.visualViewport, st = wrap.style;
    st.left = st.right = st.top = "";
    if (S.phone) {
      st.left = st.top = "0";
      st.width = "100%";
      st.height = (v ? v.height : w.innerHeight) + "px";
      st.transform = v ? "translateY(" + v.offsetTop + "px)" : "";
      st.borderRadius = "0";
      st.padding = "env(safe-area-inset-top) env(safe-area-inset-right) env(safe-area-inset-bottom) env(safe-area-inset-left)";
      st.bottom = "auto";
      st.boxSizing = "border-box";
      st.maxWidth = st.maxHeight = "";
    } else {
      st[side] = "20px";
      st.bottom = "88px";
      st.width = "380px";
      st.height = "600px";
      st.maxWidth = "calc(100vw - 40px)";
      st.maxHeight = "calc(100vh - 108px)";
      st.transform = st.padding = "";
      st.borderRadius = "14px";
    }
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
    shown = false;
  }

  function show(on) {
    if (!wrap) return;
    place();
    wrap.style.display = on ? "block" : "none";
    if (on && !w.matchMedia("(prefers-reduced-motion: reduce)").matches && wrap.animate) {
      wrap.animate([{ opacity: 0, transform: wrap.style.transform + " translateY(12px)" }, { opacity: 1, transform: wrap.style.transform }], 160);
    }
    // The keyboard follows the chat: into the frame when it opens (the
    // frame then focuses its composer); the loader moves it back to the
    // launcher when it closes.
    if (on && !shown) frame.focus();
    shown = on;
    post({ type: "visibility", open: on });
  }

  // The open chat takes a phone's whole screen (the launcher hides under
  // it). Escape on the launcher closes it, as it does in the frame; the
  // host page's own Escape (its dialogs) is left alone.
  var narrow = w.matchMedia("(max-width: 639px)");
  narrow.addEventListener("change", function () {
    S.phone = narrow.matches;
    S.label();
    show(S.open);
  });
  d.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && S.open && d.activeElement && d.activeElement.id === "parley-launcher") S.setOpen(false);
  });
  if (w.visualViewport) {
    w.visualViewport.addEventListener("resize", function () { if (wrap && S.phone) place(); });
    w.visualViewport.addEventListener("scroll", function () { if (wrap && S.phone) place(); });
  }
  w.addEventListener("message", onReady);
  P.h(function (shared) {
    S = shared;
    ORIGIN = S.origin;
    S.phone = narrow.matches;
    S.label();
    return { boot: boot, update: sendIdentity, shutdown: shutdown, show: show };
  });
})(window, document);
