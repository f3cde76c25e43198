/* Parley chat frame. Runs on Parley's origin inside the iframe the loader
   adds. Handshake and socket frames are documented in docs/protocol.md.
   Everything users wrote is put in the page with textContent, never HTML. */
(function () {
  "use strict";
  var body = document.body;
  var APP_ID = body.getAttribute("data-app-id");
  var ALLOWED = JSON.parse(body.getAttribute("data-origins") || "[]");
  var $ = function (id) { return document.getElementById(id); };
  var thread = $("thread"), list = $("list"), form = $("form"), composer = $("composer");
  var typingEl = $("typing"), notice = $("notice"), newBtn = $("new"), listBtn = $("list-btn"), announcer = $("announce");
  var greeting = $("greeting");

  // Words come from the language's catalog (internal/locales), chosen by
  // the server from the browser's and the app's languages; the page may
  // name another one (Parley('update', {locale})).
  var STR = JSON.parse(body.getAttribute("data-strings") || "{}");
  var LOCALES = JSON.parse(body.getAttribute("data-locales") || "{}");
  var lang = document.documentElement.lang || "en";
  function t(key, vars) {
    var s = STR[key] || key;
    for (var k in vars) s = s.split("{" + k + "}").join(vars[k]);
    return s;
  }
  // The owner's colour, and the text colour the server picked for it.
  var look = JSON.parse(body.getAttribute("data-look") || "{}");
  if (look.color) {
    document.documentElement.style.setProperty("--accent", look.color);
    document.documentElement.style.setProperty("--on-accent", look.text_color);
  }

  var hint = "";
  var m = /^#origin=([^&]*)$/.exec(location.hash);
  if (m) { try { hint = decodeURIComponent(m[1]); } catch (e) { hint = ""; } }

  var nonce = randomHex(16);
  var identity = null;    // what the host page's backend vouched for
  var page = "";          // the host page's URL (origin and path), "" when unknown
  var token = null;       // session token: memory only, never in a URL or storage
  var port = null;        // the private channel to the loader, once connected
  var ws = null, backoff = 0, reconnectTimer = null, stopped = false;
  var shut = false;       // shut down by the host page: this document never chats again
  var renewed = false;    // a session ended server-side was replaced once for this identity
  var socketRetryMs = 0;  // the server's hint before it refuses this socket (close 4008)
  var endedByServer = false; // the server said session_ended: the 1008 that follows ends the session
  var flushTimer = null, countdownTimer = null;
  var visible = false;
  var conv = null;        // current conversation id, null for "new conversation"
  var lastSeq = {};       // conversation id -> highest seq shown
  var shown = {};         // message id -> element
  var outbox = [];        // unacked sends, resent with the same client_msg_id
  var restored = loadOutbox(); // an earlier frame's outbox in this tab, until the identity arrives
  var typingSent = 0, typingStop = null, typingHide = null;

  function randomHex(n) {
    var b = new Uint8Array(n);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x < 16 ? "0" : "") + x.toString(16); }).join("");
  }

  // fail says why the chat cannot go on, under the header. What was shown
  // stays; what cannot work now (writing, the conversation buttons) goes.
  function fail(text) {
    stopped = true;
    var e = $("widget-error");
    if (!e) {
      e = document.createElement("div");
      e.id = "widget-error";
      e.className = "error";
      e.setAttribute("role", "alert");
      e.setAttribute("data-testid", "widget-error");
      $("error-slot").appendChild(e);
    }
    e.textContent = text;
    form.hidden = newBtn.hidden = listBtn.hidden = true;
    body.setAttribute("data-state", "error");
  }

  // unfail undoes fail once a session works again, e.g. after the host page
  // sent a corrected identity with Parley("update", …).
  function unfail() {
    var e = $("widget-error");
    if (e) e.remove();
    form.hidden = !list.hidden;
    newBtn.hidden = listBtn.hidden = false;
    body.removeAttribute("data-state");
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  // Handshake. The hint is only trusted after it matches the allowlist,
  // and then only as the single origin we talk to.
  if (window.parent === window || ALLOWED.indexOf(hint) < 0) {
    fail(t("not_here"));
    return;
  }
  window.addEventListener("message", onConnect);
  window.parent.postMessage({ parley: 1, type: "ready", nonce: nonce }, hint);
  var handshakeTimer = setTimeout(function () {
    if (!identity) fail(t("no_settings"));
  }, 10000);

  // onConnect takes the loader's end of a MessageChannel, once. After that
  // the window listener is gone: the nonce was visible to every script on
  // the host page, the port is not, so nothing that arrives on the window
  // is believed any more, whatever nonce it carries.
  function onConnect(e) {
    if (port || e.source !== window.parent || e.origin !== hint) return;
    var d = e.data;
    if (!d || typeof d !== "object" || d.parley !== 1 || d.type !== "connect" || d.nonce !== nonce) return;
    if (!e.ports || e.ports.length !== 1) return;
    window.removeEventListener("message", onConnect);
    port = e.ports[0];
    port.onmessage = onParentMessage;
  }

  function toParent(msg) {
    if (!port) return;
    msg.parley = 1;
    port.postMessage(msg);
  }

  var IDENTITY_KEYS = { user_id: 1, email: 1, name: 1, user_hash: 1, user_jwt: 1, visitor_token: 1 };

  function validIdentity(s) {
    if (!s || typeof s !== "object" || Array.isArray(s)) return false;
    for (var k in s) {
      if (!IDENTITY_KEYS[k] || typeof s[k] !== "string") return false;
    }
    return true;
  }

  // onParentMessage reads the port: only the loader holds its other end.
  function onParentMessage(e) {
    var d = e.data;
    if (shut || !d || typeof d !== "object" || d.parley !== 1) return;
    if (d.type === "identity" && validIdentity(d.settings) && (d.page === undefined || typeof d.page === "string")) {
      clearTimeout(handshakeTimer);
      if (typeof d.locale === "string") setLocale(d.locale);
      // The same identity JWT again (Parley('update') on a page change):
      // the session it made stands, and a token with a jti would be
      // refused as a replay if sent twice.
      if (token && identity && d.settings.user_jwt && d.settings.user_jwt === identity.user_jwt) {
        page = pageURL(d.page);
        return;
      }
      var changed = identity && person(identity) !== person(d.settings);
      identity = d.settings;
      renewed = false;
      page = pageURL(d.page);
      if (changed) resetConversations();
      if (restored) {
        // Resend what an earlier frame left unsent only for the same person:
        // after a logout the next user of this tab must not send it as theirs.
        if (restored.owner === outboxOwner()) outbox = restored.items.concat(outbox);
        restored = null;
      }
      startSession();
    } else if (d.type === "visibility" && typeof d.open === "boolean") {
      // Closing what was seen: its separator has done its work.
      var sep = thread.querySelector(".unread-sep");
      if (visible && !d.open && sep) sep.remove();
      visible = d.open;
      body.setAttribute("data-open", String(visible));
      if (visible) { markRead(); composer.focus(); }
    } else if (d.type === "shutdown") {
      shutdown();
    } else if (d.type === "token" && d.jwt === null && askedForToken) {
      // The page has no new identity token for us.
      askedForToken = 0;
      fail(t("unverified"));
    }
  }

  // setLocale switches to the language the page names ("" keeps the one
  // the server chose from the browser's and the app's), at once.
  function setLocale(want) {
    var tag = pickLocale(want);
    if (!tag || tag === lang) return;
    fetch(LOCALES[tag]).then(function (r) { return r.json(); }).then(function (strings) {
      STR = strings;
      lang = tag;
      var root = document.documentElement;
      root.lang = tag;
      root.dir = strings._dir === "rtl" ? "rtl" : "ltr";
      Array.prototype.forEach.call(document.querySelectorAll("[data-label]"), function (el) {
        el.setAttribute("aria-label", t(el.getAttribute("data-label")));
        if (el.title) el.title = t(el.getAttribute("data-label"));
      });
      Array.prototype.forEach.call(document.querySelectorAll("[data-text]"), function (el) { el.textContent = t(el.getAttribute("data-text")); });
      composer.placeholder = t("placeholder");
      if (list.hidden === false) listBtn.setAttribute("aria-label", t("back"));
      showPresence(presence);
      restamp();
      refreshStatuses();
      if (lastList) renderList(lastList);
    }, function () { /* keep the language we have */ });
  }

  // pickLocale is the catalog for a BCP 47 tag: exact (pt-BR), else its
  // language (pt).
  function pickLocale(want) {
    if (!want) return "";
    if (LOCALES[want]) return want;
    var base = want.split("-")[0].toLowerCase();
    return LOCALES[base] ? base : "";
  }

  // shutdown is a logout on the host page: the session ends on the server
  // too, so its token is worthless even if something kept a copy, and
  // nothing of this user is sent again from this tab.
  function shutdown() {
    shut = stopped = true;
    clearTimeout(reconnectTimer);
    clearTimeout(flushTimer);
    clearInterval(countdownTimer);
    outbox = [];
    saveOutbox();
    endSession(token);
    token = null;
    if (ws) ws.close(1000);
    toParent({ type: "shutdown_done" });
  }

  // endSession asks the server to forget the token. keepalive lets the
  // request outlive this document, which the loader removes next.
  function endSession(t) {
    if (!t) return;
    fetch("/api/widget/session", {
      method: "DELETE", headers: { Authorization: "Bearer " + t }, keepalive: true,
      credentials: "omit", cache: "no-store"
    }).catch(function () { /* it still expires on its own */ });
  }

  // pageURL keeps what agents may see of the host page: its origin and path,
  // never a query or fragment (reset tokens live there). A URL the server
  // would refuse (another origin, over 1000 bytes) is left out rather than
  // cut: half a URL names a page that does not exist.
  function pageURL(p) {
    var u;
    try { u = new URL(p); } catch (e) { return ""; }
    var s = u.origin + u.pathname;
    return u.origin === hint && new TextEncoder().encode(s).length <= 1000 ? s : "";
  }

  function resetConversations() {
    outbox = [];
    saveOutbox();
    conv = null;
    lastSeq = {};
    shown = {};
    thread.textContent = "";
    thread.appendChild(greeting);
    showGreeting();
  }

  function startSession(withoutPage) {
    if (shut) return;
    stopped = false;
    var req = { app_id: APP_ID, parent_origin: hint };
    for (var k in identity) if (identity[k]) req[k] = identity[k];
    if (page && !withoutPage) req.page_url = page;
    fetch("/api/widget/sessions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req),
      credentials: "omit", cache: "no-store"
    }).then(function (r) {
      return r.json().then(function (j) { return { status: r.status, json: j, retryAfter: r.headers.get("Retry-After") }; });
    }).then(function (res) {
      // Shut down while this was on its way: end what it created.
      if (shut) return res.status === 201 && endSession(res.json.token);
      // The page is a nice-to-have for agents: if the server refuses the
      // request with it, try once without it before telling the user.
      if (res.status === 400 && req.page_url) return startSession(true);
      if (res.status !== 201) return refused(res);
      token = res.json.token;
      askedForToken = 0;
      say("");
      unfail();
      if (res.json.visitor_token) identity.visitor_token = res.json.visitor_token;
      saveOutbox(); // under the owner's key, now that a new visitor has one
      toParent({ type: "session", visitor_token: res.json.visitor_token || null, verified: !!res.json.verified });
      connect();
    }).catch(retryLater);
  }

  var REFUSALS = {
    identity_hash_invalid: "unverified", identity_hash_missing: "unverified", identity_jwt_invalid: "unverified",
    identity_jwt_replayed: "unverified", identity_jwt_required: "unverified",
    anonymous_not_allowed: "sign_in", app_disabled: "turned_off"
  };
  // An identity JWT is single-use and short-lived: when it was spent (a
  // reload of this frame, a session ended on the server) or ran out, the
  // page is asked for a new one (Parley('onTokenNeeded', fn)), a few times
  // in a row at most.
  var TOKEN_SPENT = { identity_jwt_invalid: 1, identity_jwt_replayed: 1, identity_jwt_required: 1 };
  var askedForToken = 0;

  // refused handles a session request the server said no to.
  function refused(res) {
    var err = (res.json && res.json.error) || {};
    if (res.status === 429) {
      // The server says when: its hint beats our own backoff.
      var ms = err.retry_after_ms > 0 ? err.retry_after_ms : Number(res.retryAfter) * 1000 || 5000;
      clearTimeout(reconnectTimer);
      reconnectTimer = countdown(ms, "too_many_chats", startSession);
      return;
    }
    // 409: the site changed its settings mid-request; asking again gets
    // the answer that holds now.
    if (res.status >= 500 || res.status === 409) return retryLater();
    if (TOKEN_SPENT[err.code] && askedForToken < 3) {
      askedForToken++;
      say(t("connecting"));
      toParent({ type: "token_needed" });
      return;
    }
    askedForToken = 0;
    fail(REFUSALS[err.code] ? t(REFUSALS[err.code]) : t("unavailable", { reason: err.message || "error " + res.status }));
  }

  // countdown shows the string text (with {s} seconds) in the notice,
  // counting down, and runs fn
  // once the time is up. It returns the timer that runs fn.
  function countdown(ms, text, fn) {
    var end = Date.now() + ms;
    clearInterval(countdownTimer);
    function tick() { say(t(text, { s: Math.max(1, Math.ceil((end - Date.now()) / 1000)) })); }
    tick();
    countdownTimer = setInterval(tick, 250);
    return setTimeout(function () {
      clearInterval(countdownTimer);
      say("");
      fn();
    }, ms);
  }

  function retryLater() {
    say(t("connecting"));
    backoff = Math.min(backoff ? backoff * 2 : 1000, 30000);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(function () { token ? connect() : startSession(); }, backoff * (0.5 + Math.random() / 2));
  }

  function connect() {
    if (stopped) return;
    if (ws) { ws.onclose = null; ws.close(); }
    var sock = ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/widget/ws");
    sock.onopen = function () { sock.send(JSON.stringify({ type: "auth", token: token })); };
    sock.onmessage = function (e) {
      var f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      onFrame(f);
    };
    sock.onclose = function (e) {
      if (ws !== sock || stopped) return;
      ws = null;
      // 1008 after session_ended: the session is gone. A 1008 without it
      // (a flood cut-off) only loses the socket.
      if (e.code === 1008 && endedByServer) return sessionEnded();
      if (e.code === 4008) {
        // Too many sockets from here: wait as long as the server said.
        var ms = socketRetryMs || 5000;
        socketRetryMs = 0;
        clearTimeout(reconnectTimer);
        reconnectTimer = countdown(ms, "too_many_connections", connect);
        return;
      }
      if (e.code === 4001) { token = null; }
      retryLater();
    };
  }

  // sessionEnded handles a session the server ended (its identity secret
  // was revoked, the app turned off): one new session is tried, and if the
  // server refuses that, its refusal is shown. It is never tried again for
  // the same identity, so a server that keeps ending sessions gets no loop.
  function sessionEnded() {
    token = null;
    endedByServer = false;
    if (renewed) {
      fail(t("ended"));
      return;
    }
    renewed = true;
    // With a spent single-use JWT the server refuses this, and refused()
    // asks the page for a fresh one.
    startSession();
  }

  function send(f) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(f));
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        showPresence(f.presence);
        backoff = socketRetryMs = 0;
        outbox.forEach(function (o) { o.sent = false; });
        say("");
        postUnread(f.unread);
        send({ type: "list" });
        break;
      case "conversations": onConversations(f.conversations); break;
      case "history": onHistory(f); break;
      case "ack": onAck(f); break;
      case "message": onMessage(f.message); break;
      case "unread": postUnread(f.count); break;
      case "typing": onTyping(f); break;
      case "presence":
        // An agent came online: what was waiting reached them; ask for
        // the new marks.
        if (f.agents_online && presence.agents_online === false) send({ type: "list" });
        showPresence(f);
        break;
      case "receipt": onReceipt(f); break;
      case "error": onError(f); break;
    }
  }

  // Receipts: how far the agents got in each conversation.
  var receipts = {};
  function onReceipt(r) {
    var was = receipts[r.conversation_id] || {};
    if (r.agent_delivered_seq < (was.agent_delivered_seq || 0) && r.agent_read_seq < (was.agent_read_seq || 0)) return;
    receipts[r.conversation_id] = { agent_delivered_seq: Math.max(r.agent_delivered_seq, was.agent_delivered_seq || 0),
      agent_read_seq: Math.max(r.agent_read_seq, was.agent_read_seq || 0) };
    if (r.conversation_id === conv) refreshStatuses();
  }

  var lastList = null, readMarks = {};
  function onConversations(convs) {
    lastList = convs;
    convs.forEach(function (c) {
      readMarks[c.id] = c.read_seq;
      onReceipt({ conversation_id: c.id, agent_delivered_seq: c.agent_delivered_seq, agent_read_seq: c.agent_read_seq });
    });
    renderList(convs);
    if (!conv && convs.length && !pendingNew()) conv = convs[0].id;
    if (conv) send({ type: "open", conversation_id: conv, after_seq: lastSeq[conv] || 0 });
    flushOutbox();
  }

  function onHistory(f) {
    if (f.conversation_id !== conv) return;
    // Replies the user has not read yet start under a separator.
    var readSeq = readMarks[conv];
    f.messages.forEach(function (m) {
      if (readSeq !== undefined && m.author === "agent" && m.seq > readSeq && !thread.querySelector(".unread-sep")) separator(m.seq);
      render(m);
    });
    if (f.has_more) send({ type: "open", conversation_id: conv, after_seq: lastSeq[conv] || 0 });
    else markRead();
  }

  function onMessage(msg) {
    if (msg.conversation_id !== conv) {
      if (!conv && msg.author === "user") conv = msg.conversation_id; // started in another tab
      else { send({ type: "list" }); return; }
    }
    var fresh = !shown[msg.id];
    // An agent who answers has read what came before.
    if (msg.author === "agent") onReceipt({ conversation_id: conv, agent_delivered_seq: msg.seq, agent_read_seq: msg.seq });
    // Replies that come while the chat is closed start under a separator.
    if (fresh && !visible && msg.author === "agent" && !thread.querySelector(".unread-sep")) separator(msg.seq);
    render(msg);
    // A screen reader hears each new reply once.
    if (fresh && msg.author === "agent") announce(t("said", { name: msg.author_name || t("agent"), text: msg.body || t("a_file") }));
    markRead();
  }

  function announce(text) {
    announcer.textContent = "";
    setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function onAck(f) {
    var i = outboxIndex(f.client_msg_id);
    if (i < 0) return;
    var item = outbox[i];
    outbox.splice(i, 1);
    var cid = f.message.conversation_id;
    if (!item.conversation_id) {
      // The first message of a new conversation created it; the messages
      // queued behind it belong to it too.
      outbox.forEach(function (o) { if (!o.conversation_id) o.conversation_id = cid; });
      if (!conv) conv = cid;
    }
    saveOutbox();
    var pending = shown["pending:" + f.client_msg_id];
    if (pending) { delete shown["pending:" + f.client_msg_id]; pending.remove(); }
    if (f.conversation) onReceipt({ conversation_id: cid, agent_delivered_seq: f.conversation.agent_delivered_seq, agent_read_seq: f.conversation.agent_read_seq });
    if (cid === conv) render(f.message);
    flushOutbox();
  }

  function onError(f) {
    // The close that follows says what to do (1008: a new session).
    if (f.code === "session_ended") { endedByServer = true; return; }
    if (f.code === "rate_limited" && !f.client_msg_id) {
      // Said just before the server refuses the socket itself (close 4008).
      socketRetryMs = f.retry_after_ms || 0;
      return;
    }
    if (f.client_msg_id) {
      var i = outboxIndex(f.client_msg_id);
      if (f.code === "rate_limited") {
        if (i >= 0) outbox[i].sent = false;
        clearTimeout(flushTimer);
        flushTimer = countdown(f.retry_after_ms || 1000, "too_quick", flushOutbox);
        return;
      }
      if (i >= 0) {
        var item = outbox.splice(i, 1)[0];
        saveOutbox();
        var el = shown["pending:" + f.client_msg_id];
        if (el) {
          // The refused text is not lost: a click puts it back in the composer.
          delete shown["pending:" + f.client_msg_id];
          el.classList.add("failed");
          el.setAttribute("data-error", f.code);
          el.title = t("not_sent", { reason: f.message });
          el.onclick = function () { composer.value = item.body; el.remove(); composer.focus(); };
        }
      }
    }
    say(f.message || f.code);
  }

  function onTyping(f) {
    if (f.conversation_id !== conv) return;
    typingEl.hidden = !f.typing;
    typingEl.textContent = t("typing", { name: f.author_name || t("agent") });
    clearTimeout(typingHide);
    if (f.typing) typingHide = setTimeout(function () { typingEl.hidden = true; }, 6000);
  }

  // While the chat is open, a reply is read as soon as it is shown, so the
  // count goes 1 then 0 within milliseconds; holding it briefly keeps the
  // host page's badge (or its notification sound) from flashing.
  var unreadTimer = null;
  function postUnread(n) {
    clearTimeout(unreadTimer);
    unreadTimer = setTimeout(function () { toParent({ type: "unread", count: n }); }, visible && n > 0 ? 500 : 0);
  }

  function markRead() {
    if (!visible || !conv || !lastSeq[conv]) return;
    send({ type: "read", conversation_id: conv, seq: lastSeq[conv] });
  }

  // The team's presence: the greeting on an empty conversation, how soon
  // they usually reply, and, when nobody can answer now, the away message
  // or a word that nobody is online. Users can still write.
  var presence = {};
  function showPresence(p) {
    presence = p || {};
    var rt = $("reply-time");
    rt.textContent = presence.reply_time ? t("reply_" + presence.reply_time) : "";
    rt.hidden = !rt.textContent;
    var away = $("presence");
    away.textContent = "";
    if (presence.open === false) {
      away.textContent = presence.away_message || t("away");
      away.dataset.state = "away";
    } else if (presence.agents_online === false) {
      away.textContent = t("offline");
      away.dataset.state = "offline";
    }
    away.hidden = !away.textContent;
    showGreeting();
  }
  function showGreeting() {
    greeting.textContent = (presence && presence.greeting) || "";
    greeting.hidden = !greeting.textContent || !!thread.querySelector("[data-testid=message]");
  }

  // Rendering. Text only: textContent, never innerHTML. Links are made
  // from http(s) URLs alone, as elements whose text is the URL.
  var URLS = /\bhttps?:\/\/[^\s<>"]+/g;
  function appendText(el, text) {
    var at = 0, m;
    URLS.lastIndex = 0;
    while ((m = URLS.exec(text))) {
      var url = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
      var u = null;
      try { u = new URL(url); } catch (e) { /* not a link */ }
      if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) continue;
      el.appendChild(document.createTextNode(text.slice(at, m.index)));
      var a = document.createElement("a");
      a.href = u.href;
      a.textContent = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      el.appendChild(a);
      at = m.index + url.length;
      URLS.lastIndex = at;
    }
    el.appendChild(document.createTextNode(text.slice(at)));
  }

  var TICKS = { sending: "M12 7v5l3 2", sent: "M5 12l5 5L20 7", delivered: "M2 12l5 5L17 7M12 16l1 1L23 7",
    read: "M2 12l5 5L17 7M12 16l1 1L23 7M1 21h22" };
  function statusOf(seq) {
    var r = receipts[conv] || {};
    if (seq <= (r.agent_read_seq || 0)) return "read";
    if (seq <= (r.agent_delivered_seq || 0)) return "delivered";
    return "sent";
  }
  // setStatus shows a message's state: sending, sent, delivered or read.
  function setStatus(row, state) {
    var st = row.querySelector(".status");
    if (!st) {
      st = document.createElement("span");
      st.className = "status";
      st.setAttribute("data-testid", "status");
      var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 24 24");
      svg.setAttribute("aria-hidden", "true");
      svg.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "path"));
      st.appendChild(svg);
      var label = document.createElement("span");
      label.className = "sr";
      st.appendChild(label);
      row.appendChild(st);
    }
    st.setAttribute("data-status", state);
    st.querySelector("path").setAttribute("d", TICKS[state]);
    st.querySelector(".sr").textContent = t("status_" + state);
    st.title = t("status_" + state);
  }
  function refreshStatuses() {
    Array.prototype.forEach.call(thread.querySelectorAll(".msg.me[data-seq]"), function (row) {
      setStatus(row, statusOf(Number(row.getAttribute("data-seq"))));
    });
    Array.prototype.forEach.call(thread.querySelectorAll(".msg.me.pending"), function (row) { setStatus(row, "sending"); });
  }

  function render(msg) {
    if (shown[msg.id]) return;
    var mine = msg.author !== "agent";
    var row = document.createElement("div");
    row.className = "msg " + (mine ? "me" : "agent");
    row.setAttribute("data-testid", "message");
    row.setAttribute("data-author", mine ? "me" : "agent");
    row.setAttribute("data-seq", String(msg.seq));
    row.setAttribute("data-at", msg.created_at);
    if (!mine && msg.author_name) {
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = msg.author_name;
      row.appendChild(who);
    }
    if (msg.body) {
      var text = document.createElement("div");
      text.className = "text";
      appendText(text, msg.body);
      row.appendChild(text);
    }
    renderAttachments(row, msg.attachments);
    if (mine) setStatus(row, statusOf(msg.seq));
    shown[msg.id] = row;
    // Committed messages stay in seq order (a catch-up may arrive after a
    // live message); unacked ones stay at the end.
    var before = thread.querySelector(".pending");
    var rows = thread.querySelectorAll("[data-seq]");
    for (var i = 0; i < rows.length; i++) {
      if (Number(rows[i].getAttribute("data-seq")) > msg.seq) { before = rows[i]; break; }
    }
    thread.insertBefore(row, before);
    if (msg.seq > (lastSeq[msg.conversation_id] || 0)) lastSeq[msg.conversation_id] = msg.seq;
    if (msg.author === "agent") typingEl.hidden = true;
    restamp();
    scrollDown();
    showGreeting();
  }

  function scrollDown() { thread.scrollTop = thread.scrollHeight; }

  // separator marks where the unread replies start.
  function separator(seq) {
    var sep = document.createElement("div");
    sep.className = "unread-sep";
    sep.setAttribute("data-testid", "unread-separator");
    sep.setAttribute("data-before", String(seq));
    sep.setAttribute("role", "separator");
    var label = document.createElement("span");
    label.textContent = t("new_messages");
    label.setAttribute("data-text", "new_messages");
    sep.appendChild(label);
    thread.insertBefore(sep, thread.querySelector(".pending"));
  }

  // restamp puts the local time above each group of messages: the first
  // of a day, and any after a pause of ten minutes or more.
  function restamp() {
    Array.prototype.forEach.call(thread.querySelectorAll(".stamp"), function (el) { el.remove(); });
    var prev = null;
    var timeFmt = new Intl.DateTimeFormat(lang, { hour: "numeric", minute: "2-digit" });
    var dayFmt = new Intl.DateTimeFormat(lang, { weekday: "long", day: "numeric", month: "long" });
    Array.prototype.forEach.call(thread.querySelectorAll(".msg[data-at]"), function (row) {
      var at = new Date(row.getAttribute("data-at"));
      if (isNaN(at)) return;
      row.title = at.toLocaleString(lang);
      var newDay = !prev || prev.toDateString() !== at.toDateString();
      if (prev && !newDay && at - prev < 10 * 60 * 1000) { prev = at; return; }
      var stamp = document.createElement("time");
      stamp.className = "stamp";
      stamp.setAttribute("data-testid", "timestamp");
      stamp.dateTime = at.toISOString();
      var day = "";
      if (newDay) {
        var today = new Date(), yesterday = new Date(today - 864e5);
        day = at.toDateString() === today.toDateString() ? t("today") :
          at.toDateString() === yesterday.toDateString() ? t("yesterday") : dayFmt.format(at);
        day += " · ";
      }
      stamp.textContent = day + timeFmt.format(at);
      var before = row.previousElementSibling && row.previousElementSibling.classList.contains("unread-sep") ? row.previousElementSibling : row;
      thread.insertBefore(stamp, before);
      prev = at;
    });
  }

  function renderPending(item) {
    var row = document.createElement("div");
    row.className = "msg me pending";
    row.setAttribute("data-testid", "message");
    row.setAttribute("data-author", "me");
    row.setAttribute("data-pending", "true");
    var text = document.createElement("div");
    text.className = "text";
    text.textContent = item.body || (item.files || []).map(function (f) { return f.name; }).join(", ");
    row.appendChild(text);
    setStatus(row, "sending");
    shown["pending:" + item.client_msg_id] = row;
    thread.appendChild(row);
    scrollDown();
    showGreeting();
  }

  function renderList(convs) {
    list.textContent = "";
    var h = document.createElement("h2");
    h.textContent = t("conversations");
    list.appendChild(h);
    if (!convs.length) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = t("no_conversations");
      list.appendChild(empty);
    }
    var when = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", hour: "numeric", minute: "2-digit" });
    convs.forEach(function (c) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "conv" + (c.unread ? " unread" : "");
      b.setAttribute("data-testid", "conversation");
      var what = document.createElement("span");
      what.className = "what";
      what.textContent = c.last_message ? (c.last_message.body || t("a_file")).slice(0, 80) : t("new_conversation");
      var at = document.createElement("span");
      at.className = "when";
      at.textContent = when.format(new Date(c.last_message_at)) + (c.unread ? " · " + t("unread", { n: c.unread }) : "");
      b.appendChild(what);
      b.appendChild(at);
      b.onclick = function () { switchTo(c.id); };
      list.appendChild(b);
    });
  }

  function switchTo(id) {
    conv = id;
    thread.textContent = "";
    thread.appendChild(greeting);
    showGreeting();
    shown = {};
    lastSeq[id] = 0;
    showList(false);
    outbox.forEach(function (o) { if (o.conversation_id === id) renderPending(o); });
    if (id) send({ type: "open", conversation_id: id, after_seq: 0 });
    composer.focus();
  }

  function showList(on) {
    list.hidden = !on;
    thread.hidden = on;
    form.hidden = on;
    listBtn.setAttribute("aria-expanded", String(on));
    listBtn.setAttribute("aria-label", on ? t("back") : t("conversations"));
    listBtn.setAttribute("data-label", on ? "back" : "conversations");
    listBtn.title = listBtn.getAttribute("aria-label");
    if (on) { send({ type: "list" }); list.focus(); }
  }

  // Outbox: kept in this frame's sessionStorage so a reload loses nothing,
  // together with whose it is: {owner, items}.
  function loadOutbox() {
    try {
      var v = JSON.parse(sessionStorage.getItem("parley:outbox:" + APP_ID) || "null");
      return v && typeof v.owner === "string" && Array.isArray(v.items) ? v : null;
    } catch (e) { return null; }
  }
  function saveOutbox() {
    var keep = outbox.map(function (o) {
      return { client_msg_id: o.client_msg_id, conversation_id: o.conversation_id, body: o.body, attachment_ids: o.attachment_ids, files: o.files };
    });
    var v = { owner: identity ? outboxOwner() : "", items: keep };
    try { sessionStorage.setItem("parley:outbox:" + APP_ID, JSON.stringify(v)); } catch (e) { /* memory only */ }
  }
  // outboxOwner names the person the host page says is using the widget.
  function outboxOwner() {
    return person(identity) || "visitor:" + (identity.visitor_token || "");
  }
  // person names the user an identity claims to be, "" for a visitor. For
  // a JWT it is the token's sub, read without checking the signature: it
  // is only a local label (whose unsent messages these are), and the
  // server checks the token itself.
  function person(s) {
    if (s.user_id) return "user_id:" + s.user_id;
    if (s.email) return "email:" + s.email.toLowerCase();
    if (s.user_jwt) return "user_id:" + (jwtSub(s.user_jwt) || s.user_jwt);
    return "";
  }
  function jwtSub(jwt) {
    try {
      var b64 = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var bytes = Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
      var sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
      return typeof sub === "string" ? sub : "";
    } catch (e) { return ""; }
  }
  function outboxIndex(id) {
    for (var i = 0; i < outbox.length; i++) if (outbox[i].client_msg_id === id) return i;
    return -1;
  }
  function pendingNew() {
    return outbox.some(function (o) { return !o.conversation_id; });
  }

  // flushOutbox sends what this socket has not sent yet. Resends after a
  // reconnect carry the same client_msg_id, so the server never stores a
  // message twice.
  function flushOutbox() {
    var newConvInFlight = false;
    outbox.forEach(function (o) {
      if (!shown["pending:" + o.client_msg_id] && (o.conversation_id || null) === conv) renderPending(o);
      if (!o.conversation_id) {
        if (newConvInFlight) return; // one message creates the conversation; the rest wait for its ack
        newConvInFlight = true;
      }
      if (o.sent || !ws || ws.readyState !== 1) return;
      o.sent = true;
      send({ type: "send", conversation_id: o.conversation_id || undefined, client_msg_id: o.client_msg_id, body: o.body,
        attachment_ids: o.attachment_ids });
    });
  }

  // Attachments: each chosen file is uploaded (the token in a header, never
  // in a URL), then sent as a message of its own.
  var attachInput = $("attach");
  attachInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(attachInput.files || []);
    attachInput.value = "";
    files.reduce(function (p, f) { return p.then(function () { return uploadAndSend(f); }); }, Promise.resolve());
  });
  var uploadErrors = { attachment_too_large: "file_too_large", attachment_type_not_allowed: "file_type", attachment_quota_exceeded: "file_quota" };
  function uploadAndSend(file) {
    if (!token) { say(t("not_connected")); return Promise.resolve(); }
    var fd = new FormData();
    fd.append("file", file, file.name);
    say(t("sending_file", { name: file.name }));
    return fetch("/api/widget/attachments", { method: "POST", headers: { Authorization: "Bearer " + token }, body: fd })
      .then(function (res) { return res.json().then(function (j) { return { status: res.status, json: j }; }); })
      .then(function (r) {
        if (r.status !== 201) {
          say(t(uploadErrors[r.json.error && r.json.error.code] || "file_failed"));
          return;
        }
        say("");
        var a = r.json.attachment;
        var item = { client_msg_id: randomHex(12), conversation_id: conv, body: "", attachment_ids: [a.id], files: [a] };
        outbox.push(item);
        saveOutbox();
        renderPending(item);
        flushOutbox();
      }, function () { say(t("file_offline")); });
  }

  // fetchFile downloads an attachment with the session token in a header
  // and returns a blob: URL for it.
  var blobURLs = {};
  function fetchFile(a) {
    if (blobURLs[a.id]) return Promise.resolve(blobURLs[a.id]);
    return fetch(a.url, { headers: { Authorization: "Bearer " + token } }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.blob();
    }).then(function (b) { return (blobURLs[a.id] = URL.createObjectURL(b)); });
  }

  function renderAttachments(row, list) {
    (list || []).forEach(function (a) {
      var box = document.createElement("div");
      box.className = "file";
      box.setAttribute("data-testid", "attachment");
      box.setAttribute("data-type", a.type);
      if (/^image\/(png|jpeg|gif)$/.test(a.type)) {
        var img = document.createElement("img");
        img.alt = a.name;
        box.appendChild(img);
        fetchFile(a).then(function (u) { img.src = u; img.onload = scrollDown; }, function () { img.alt = t("file_unloaded", { name: a.name }); });
      } else {
        var link = document.createElement("a");
        link.href = "#";
        link.textContent = a.name + " (" + Math.max(1, Math.round(a.size / 1024)) + " KB)";
        link.addEventListener("click", function (e) {
          e.preventDefault();
          fetchFile(a).then(function (u) {
            var d = document.createElement("a");
            d.href = u;
            d.download = a.name;
            d.click();
          }, function () { say(t("download_failed")); });
        });
        box.appendChild(link);
      }
      row.appendChild(box);
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = composer.value;
    if (!text.trim()) return;
    if (new TextEncoder().encode(text).length > 4000) { say(t("too_long")); return; }
    var item = { client_msg_id: randomHex(12), conversation_id: conv, body: text };
    // Writing is reading: whatever the separator marked is seen.
    var sep = thread.querySelector(".unread-sep");
    if (sep) sep.remove();
    outbox.push(item);
    saveOutbox();
    composer.value = "";
    composer.style.height = "";
    renderPending(item);
    flushOutbox();
    stopTyping();
  });
  composer.addEventListener("keydown", function (e) {
    // Enter that confirms an IME composition (Japanese, Chinese, …) is not a
    // send; some browsers flag it only with keyCode 229.
    if (e.isComposing || e.keyCode === 229) return;
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });

  composer.addEventListener("input", function () {
    if (!conv) return;
    var now = Date.now();
    if (now - typingSent > 3000) { typingSent = now; send({ type: "typing", conversation_id: conv, typing: true }); }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 4000);
  });

  function stopTyping() {
    clearTimeout(typingStop);
    if (typingSent && conv) send({ type: "typing", conversation_id: conv, typing: false });
    typingSent = 0;
  }

  newBtn.addEventListener("click", function () { switchTo(null); });
  listBtn.addEventListener("click", function () { showList(list.hidden); });
  $("close").addEventListener("click", function () { toParent({ type: "close" }); });
  // Escape closes the chat; the loader gives the keyboard back to the
  // launcher.
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !e.isComposing) { e.preventDefault(); toParent({ type: "close" }); }
  });
  // The composer grows with what is written, up to a few lines.
  composer.addEventListener("input", function () {
    composer.style.height = "auto";
    composer.style.height = Math.min(composer.scrollHeight, 120) + "px";
  });
})();
