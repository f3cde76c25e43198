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
  var typingEl = $("typing"), notice = $("notice"), newBtn = $("new"), listBtn = $("list-btn");

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

  function fail(text) {
    stopped = true;
    var e = $("widget-error");
    if (!e) {
      e = document.createElement("div");
      e.id = "widget-error";
      e.className = "error";
      e.setAttribute("role", "alert");
      e.setAttribute("data-testid", "widget-error");
      body.insertBefore(e, body.firstChild);
    }
    e.textContent = text;
    form.hidden = true;
  }

  // unfail undoes fail once a session works again, e.g. after the host page
  // sent a corrected identity with Parley("update", …).
  function unfail() {
    var e = $("widget-error");
    if (e) e.remove();
    form.hidden = !list.hidden;
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  // Handshake. The hint is only trusted after it matches the allowlist,
  // and then only as the single origin we talk to.
  if (window.parent === window || ALLOWED.indexOf(hint) < 0) {
    fail("This chat can't be shown on this page.");
    return;
  }
  window.addEventListener("message", onConnect);
  window.parent.postMessage({ parley: 1, type: "ready", nonce: nonce }, hint);
  var handshakeTimer = setTimeout(function () {
    if (!identity) fail("Could not connect to this page's chat settings.");
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
      visible = d.open;
      body.setAttribute("data-open", String(visible));
      if (visible) { markRead(); composer.focus(); }
    } else if (d.type === "shutdown") {
      shutdown();
    }
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
      unfail();
      if (res.json.visitor_token) identity.visitor_token = res.json.visitor_token;
      saveOutbox(); // under the owner's key, now that a new visitor has one
      toParent({ type: "session", visitor_token: res.json.visitor_token || null, verified: !!res.json.verified });
      connect();
    }).catch(retryLater);
  }

  var REFUSALS = {
    identity_hash_invalid: "We couldn't verify who you are, so this chat is unavailable.",
    anonymous_not_allowed: "Please sign in to chat with us.",
    app_disabled: "Chat is turned off on this site."
  };
  REFUSALS.identity_hash_missing = REFUSALS.identity_jwt_invalid = REFUSALS.identity_jwt_replayed =
    REFUSALS.identity_jwt_required = REFUSALS.identity_hash_invalid;

  // refused handles a session request the server said no to.
  function refused(res) {
    var err = (res.json && res.json.error) || {};
    if (res.status === 429) {
      // The server says when: its hint beats our own backoff.
      var ms = err.retry_after_ms > 0 ? err.retry_after_ms : Number(res.retryAfter) * 1000 || 5000;
      clearTimeout(reconnectTimer);
      reconnectTimer = countdown(ms, "Too many chats are starting from your network. Trying again in", startSession);
      return;
    }
    // 409: the site changed its settings mid-request; asking again gets
    // the answer that holds now.
    if (res.status >= 500 || res.status === 409) return retryLater();
    fail(REFUSALS[err.code] || "Chat is unavailable: " + (err.message || "error " + res.status));
  }

  // countdown shows "text N s…" in the notice, counting down, and runs fn
  // once the time is up. It returns the timer that runs fn.
  function countdown(ms, text, fn) {
    var end = Date.now() + ms;
    clearInterval(countdownTimer);
    function tick() { say(text + " " + Math.max(1, Math.ceil((end - Date.now()) / 1000)) + " s…"); }
    tick();
    countdownTimer = setInterval(tick, 250);
    return setTimeout(function () {
      clearInterval(countdownTimer);
      say("");
      fn();
    }, ms);
  }

  function retryLater() {
    say("Connecting…");
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
        reconnectTimer = countdown(ms, "Too many connections. Trying again in", connect);
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
      fail("This chat was ended. Reload the page to start again.");
      return;
    }
    renewed = true;
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
      case "presence": showPresence(f); break;
      case "error": onError(f); break;
    }
  }

  function onConversations(convs) {
    renderList(convs);
    if (!conv && convs.length && !pendingNew()) conv = convs[0].id;
    if (conv) send({ type: "open", conversation_id: conv, after_seq: lastSeq[conv] || 0 });
    flushOutbox();
  }

  function onHistory(f) {
    if (f.conversation_id !== conv) return;
    f.messages.forEach(render);
    if (f.has_more) send({ type: "open", conversation_id: conv, after_seq: lastSeq[conv] || 0 });
    else markRead();
  }

  function onMessage(msg) {
    if (msg.conversation_id !== conv) {
      if (!conv && msg.author === "user") conv = msg.conversation_id; // started in another tab
      else { send({ type: "list" }); return; }
    }
    render(msg);
    markRead();
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
        flushTimer = countdown(f.retry_after_ms || 1000, "You're sending messages quickly. Sending again in", flushOutbox);
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
          el.title = "Not sent: " + f.message + " (click to edit)";
          el.onclick = function () { composer.value = item.body; el.remove(); composer.focus(); };
        }
      }
    }
    say(f.message || f.code);
  }

  function onTyping(f) {
    if (f.conversation_id !== conv) return;
    typingEl.hidden = !f.typing;
    typingEl.textContent = (f.author_name || "Agent") + " is typing…";
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
  var replyTimes = { minutes: "Usually replies within a few minutes", hour: "Usually replies within an hour",
    hours: "Usually replies within a few hours", day: "Usually replies within a day" };
  function showPresence(p) {
    presence = p || {};
    var rt = $("reply-time");
    rt.textContent = replyTimes[presence.reply_time] || "";
    rt.hidden = !rt.textContent;
    var away = $("presence");
    away.textContent = "";
    if (presence.open === false) {
      away.textContent = presence.away_message || "We're away right now. Leave a message and we'll answer when we're back.";
      away.dataset.state = "away";
    } else if (presence.agents_online === false) {
      away.textContent = "Nobody is online right now. Leave a message and we'll answer as soon as we can.";
      away.dataset.state = "offline";
    }
    away.hidden = !away.textContent;
    showGreeting();
  }
  function showGreeting() {
    var g = $("greeting");
    g.textContent = (presence && presence.greeting) || "";
    g.hidden = !g.textContent || thread.children.length > 0;
  }

  // Rendering. Text only: textContent, never innerHTML.
  function render(msg) {
    if (shown[msg.id]) return;
    var row = document.createElement("div");
    row.className = "msg " + (msg.author === "agent" ? "agent" : "me");
    row.setAttribute("data-testid", "message");
    row.setAttribute("data-author", msg.author === "agent" ? "agent" : "me");
    row.setAttribute("data-seq", String(msg.seq));
    if (msg.author === "agent" && msg.author_name) {
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = msg.author_name;
      row.appendChild(who);
    }
    if (msg.body) {
      var text = document.createElement("div");
      text.className = "text";
      text.textContent = msg.body;
      row.appendChild(text);
    }
    renderAttachments(row, msg.attachments);
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
    thread.scrollTop = thread.scrollHeight;
    showGreeting();
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
    shown["pending:" + item.client_msg_id] = row;
    thread.appendChild(row);
    thread.scrollTop = thread.scrollHeight;
    showGreeting();
  }

  function renderList(convs) {
    list.textContent = "";
    if (!convs.length) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No conversations yet.";
      list.appendChild(empty);
    }
    convs.forEach(function (c) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "conv" + (c.unread ? " unread" : "");
      b.setAttribute("data-testid", "conversation");
      b.textContent = c.last_message ? c.last_message.body.slice(0, 80) : "New conversation";
      b.onclick = function () { switchTo(c.id); };
      list.appendChild(b);
    });
  }

  function switchTo(id) {
    conv = id;
    thread.textContent = "";
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
    listBtn.textContent = on ? "Back" : "Conversations";
    if (on) send({ type: "list" });
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
    var keep = outbox.map(function (o) { return { client_msg_id: o.client_msg_id, conversation_id: o.conversation_id, body: o.body }; });
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
  var uploadErrors = { attachment_too_large: "That file is too large.", attachment_type_not_allowed: "That kind of file can't be sent: send an image, a PDF, a text file or an office document.",
    attachment_quota_exceeded: "There is no room for more files in this chat." };
  function uploadAndSend(file) {
    if (!token) { say("Not connected yet: try again in a moment."); return Promise.resolve(); }
    var fd = new FormData();
    fd.append("file", file, file.name);
    say("Sending " + file.name + "…");
    return fetch("/api/widget/attachments", { method: "POST", headers: { Authorization: "Bearer " + token }, body: fd })
      .then(function (res) { return res.json().then(function (j) { return { status: res.status, json: j }; }); })
      .then(function (r) {
        if (r.status !== 201) {
          say(uploadErrors[r.json.error && r.json.error.code] || "The file could not be sent.");
          return;
        }
        say("");
        var a = r.json.attachment;
        var item = { client_msg_id: randomHex(12), conversation_id: conv, body: "", attachment_ids: [a.id], files: [a] };
        outbox.push(item);
        saveOutbox();
        renderPending(item);
        flushOutbox();
      }, function () { say("The file could not be sent: check your connection."); });
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
        fetchFile(a).then(function (u) { img.src = u; }, function () { img.alt = a.name + " (could not be loaded)"; });
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
          }, function () { say("The file could not be downloaded."); });
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
    if (new TextEncoder().encode(text).length > 4000) { say("That message is too long (4,000 bytes at most)."); return; }
    var item = { client_msg_id: randomHex(12), conversation_id: conv, body: text };
    outbox.push(item);
    saveOutbox();
    composer.value = "";
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
})();
