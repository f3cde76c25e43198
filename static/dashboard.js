/* Parley dashboard: the live inbox (over the agent socket), replies
   without a reload, typing, and the copy and reveal buttons. Whatever users
   wrote reaches this script only as HTML the server rendered and escaped;
   the script never builds markup from data. */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }

  // A mailed link carries its token in the #fragment, which no server
  // sees: it goes into the form's code field, and out of the address bar
  // and the history.
  var code = document.querySelector("[data-fragment-token]");
  if (code && location.hash.length > 1) {
    try { code.value = decodeURIComponent(location.hash.slice(1)); } catch (e) { code.value = location.hash.slice(1); }
    history.replaceState(null, "", location.pathname);
  }

  // The appearance settings' live preview follows the appearance form and
  // the availability form's greeting and reply time as they are edited.
  var preview = $("preview");
  if (preview) livePreview(preview);
  function livePreview(fig) {
    var form = $("appearance-form"), avail = document.querySelector('[data-testid="availability-settings"] form');
    var replies = { minutes: "Usually replies within a few minutes", hour: "Usually replies within an hour",
      hours: "Usually replies within a few hours", day: "Usually replies within a day" };
    function value(f, name) {
      var el = f && f.querySelector('[name="' + name + '"]:checked') || f && f.querySelector('[name="' + name + '"]');
      return el ? el.value : "";
    }
    function update() {
      var color = value(form, "color"), text = textOn(color), team = value(form, "team_name").trim() || fig.dataset.appName;
      [$("preview-head"), $("preview-me"), $("preview-launcher")].forEach(function (el) {
        el.style.background = color;
        el.style.color = text;
      });
      $("preview-team").textContent = team;
      if ($("preview-initial")) $("preview-initial").textContent = team.charAt(0).toUpperCase();
      $("preview-label").textContent = value(form, "launcher_label").trim();
      $("preview-launcher-row").classList.toggle("left", value(form, "position") === "left");
      var g = $("preview-greeting"), r = $("preview-reply");
      g.textContent = value(avail, "greeting").trim();
      g.hidden = !g.textContent;
      r.textContent = replies[value(avail, "reply_time")] || "";
      r.hidden = !r.textContent;
    }
    form.addEventListener("input", update);
    if (avail) avail.addEventListener("input", update);
    update();
  }

  // textOn is black or white, whichever reads better on hex (WCAG 2
  // contrast; the server's package theme picks the same for the widget).
  function textOn(hex) {
    var l = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var lum = 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
    return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? "#ffffff" : "#000000";
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(data || {})
    });
  }

  function errorMessage(res) {
    return res.json().then(function (j) { return j.error.message; }, function () { return "The server answered " + res.status + "."; });
  }

  // HTML from our own server, parsed inertly (a <template> runs nothing).
  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    localTimes(t.content);
    return t.content;
  }

  // Times arrive in UTC; they are shown in the owner's own time zone and
  // language: data-local in the text, data-local-title in the tooltip.
  var timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function localTimes(root) {
    Array.prototype.forEach.call(root.querySelectorAll("time[data-local], time[data-local-title]"), function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      if (el.hasAttribute("data-local")) el.textContent = timeFormat.format(d);
      el.title = timeFormat.format(d);
    });
  }
  localTimes(document);

  // A sign-in that has ended answers with a redirect to the sign-in page;
  // that page must not end up inside the inbox.
  function fetchHTML(url) {
    return fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "text/html" } }).then(function (res) {
      if (res.type === "opaqueredirect" || res.status === 401) throw { ended: true };
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.text();
    });
  }

  function copy(button) {
    var text = $(button.dataset.copy).textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(text).then(done, function () {});
      return;
    }
    var range = document.createRange();
    range.selectNodeContents($(button.dataset.copy));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    if (document.execCommand("copy")) done();
  }

  function reveal(button) {
    post(button.dataset.reveal).then(function (res) {
      if (!res.ok) return errorMessage(res).then(function (m) { throw new Error(m); });
      return res.json();
    }).then(function (j) {
      var target = $(button.dataset.target);
      target.textContent = j.secret;
      button.hidden = true;
      var copyButton = button.parentNode.querySelector("[data-copy='" + target.id + "']");
      if (copyButton) copyButton.hidden = false;
    }).catch(function (e) { alert("Could not reveal the secret: " + e.message); });
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button");
    if (!b) return;
    if (b.dataset.copy) copy(b);
    if (b.dataset.reveal) reveal(b);
  });

  var inbox = $("inbox");
  if (inbox) live(inbox);

  function live(inbox) {
    var thread = $("thread");
    var convID = thread ? thread.dataset.conversationId : "";
    var base = thread ? thread.dataset.baseUrl : "";
    var lastSeq = thread ? Number(thread.dataset.lastSeq) : 0;
    var status = $("live");

    // Each refresh runs one at a time; a request during one runs once after.
    function serial(fn) {
      var busy = false, again = false;
      return function run() {
        if (busy) { again = true; return; }
        busy = true;
        fn().catch(ended).then(function () {
          busy = false;
          if (again) { again = false; run(); }
        });
      };
    }

    function ended(e) {
      if (e && e.ended) setLive("ended", "Your session has ended. Reload the page to sign in again.");
    }

    var refreshList = serial(function () {
      return fetchHTML(inbox.dataset.listUrl).then(function (html) {
        $("conversations").replaceChildren(fragment(html));
        showUnreadInTitle();
      });
    });

    // The tab's title counts the conversations with something unread.
    var title = document.title;
    function showUnreadInTitle() {
      var n = $("conversations").querySelectorAll(".unread").length;
      document.title = (n ? "(" + n + ") " : "") + title;
    }
    showUnreadInTitle();

    // Alerts: a browser notification and a sound, each opted into on this
    // browser, once per conversation until it is opened, and never for a
    // message on screen.
    var prefsKey = "parley.alerts." + inbox.dataset.appId;
    var prefs = {};
    var notified = {};
    try {
      prefs = JSON.parse(localStorage.getItem(prefsKey) || "{}");
      notified = JSON.parse(sessionStorage.getItem(prefsKey) || "{}");
    } catch (e) { /* storage off: no memory between pages */ }
    function keep() {
      try {
        localStorage.setItem(prefsKey, JSON.stringify(prefs));
        sessionStorage.setItem(prefsKey, JSON.stringify(notified));
      } catch (e) { /* storage off */ }
    }
    function opened() {
      if (convID && document.visibilityState === "visible" && notified[convID]) {
        delete notified[convID];
        keep();
      }
    }
    opened();
    document.addEventListener("visibilitychange", opened);

    var canNotify = "Notification" in window;
    var alertsButton = $("alerts-toggle"), soundButton = $("sound-toggle");
    function showAlertButtons() {
      var on = prefs.notify && canNotify && Notification.permission === "granted";
      alertsButton.setAttribute("aria-pressed", on ? "true" : "false");
      alertsButton.textContent = on ? "Turn off alerts" : "Turn on alerts";
      if (canNotify && Notification.permission === "denied") {
        alertsButton.textContent = "Alerts are blocked by the browser";
        alertsButton.disabled = true;
      }
      alertsButton.hidden = !canNotify;
      soundButton.setAttribute("aria-pressed", prefs.sound ? "true" : "false");
      soundButton.textContent = prefs.sound ? "Turn off sound" : "Turn on sound";
      $("alerts").hidden = false;
    }
    alertsButton.addEventListener("click", function () {
      if (prefs.notify && Notification.permission === "granted") {
        prefs.notify = false;
        keep();
        showAlertButtons();
        return;
      }
      Notification.requestPermission().then(function (p) {
        prefs.notify = p === "granted";
        keep();
        showAlertButtons();
      });
    });
    soundButton.addEventListener("click", function () {
      prefs.sound = !prefs.sound;
      keep();
      showAlertButtons();
      if (prefs.sound) chime(); // also lets the page play sound from now on
    });
    showAlertButtons();

    var audio;
    function chime() {
      try {
        audio = audio || new AudioContext();
        var o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = 880;
        g.gain.setValueAtTime(0.08, audio.currentTime);
        g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
        o.connect(g);
        g.connect(audio.destination);
        o.start();
        o.stop(audio.currentTime + 0.25);
      } catch (e) { /* no audio */ }
    }

    function alertFor(f) {
      if (!f.message || f.message.author !== "user") return;
      var c = f.conversation_id;
      if ((c === convID && document.visibilityState === "visible") || notified[c]) return;
      notified[c] = true;
      keep();
      if (prefs.notify && canNotify && Notification.permission === "granted") {
        try {
          var n = new Notification("New message", { body: f.message.body.slice(0, 140), tag: c });
          n.onclick = function () {
            window.focus();
            location.href = inbox.dataset.conversationUrl + encodeURIComponent(c);
          };
        } catch (e) { /* refused by the browser: the sound and the title still tell */ }
      }
      if (prefs.sound) chime();
    }

    var syncThread = serial(function () {
      return fetchHTML(base + "?fragment=messages&after_seq=" + lastSeq).then(function (html) {
        var list = $("messages");
        Array.prototype.forEach.call(fragment(html).children, function (li) {
          var seq = Number(li.dataset.seq);
          if (seq <= lastSeq) return;
          lastSeq = seq;
          list.appendChild(li);
        });
        list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "end" });
        markRead();
      });
    });

    var readSeq = 0;
    function markRead() {
      if (!convID || document.visibilityState !== "visible" || lastSeq <= readSeq) return;
      readSeq = lastSeq;
      post(base + "/read", { seq: lastSeq });
    }
    document.addEventListener("visibilitychange", markRead);

    var typingEl = $("user-typing"), typingTimer;
    function showTyping(on) {
      clearTimeout(typingTimer);
      typingEl.hidden = !on;
      if (on) typingTimer = setTimeout(function () { typingEl.hidden = true; }, 6000);
    }

    function showStatus(s) {
      var label = $("status-label");
      if (!label || label.textContent === s) return;
      label.textContent = s;
      label.className = "status " + s;
      label.hidden = s !== "closed";
      var form = label.parentNode;
      form.querySelector("input[name=status]").value = s === "closed" ? "open" : "closed";
      form.querySelector("button").textContent = s === "closed" ? "Reopen" : "Close";
    }

    function handle(f) {
      switch (f.type) {
        case "welcome":
          setLive("live", "Live");
          retry = 500;
          refreshList();
          if (convID) syncThread();
          break;
        case "message":
          alertFor(f);
          refreshList();
          if (f.conversation_id === convID) {
            if (f.message && f.message.author === "user") showTyping(false);
            syncThread();
          }
          break;
        case "typing":
          if (f.conversation_id === convID && typingEl) showTyping(f.typing);
          break;
        case "conversation":
          refreshList();
          if (f.conversation_id === convID) showStatus(f.status);
          break;
      }
    }

    function setLive(state, text) {
      status.dataset.state = state;
      status.textContent = text;
    }

    var retry = 500;
    function connect() {
      var ws = new WebSocket(location.origin.replace(/^http/, "ws") + inbox.dataset.wsUrl);
      ws.onmessage = function (ev) {
        var f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        handle(f);
      };
      ws.onclose = function (ev) {
        if (ev.code === 4001) {
          ended({ ended: true });
          return;
        }
        setLive("down", "Reconnecting…");
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 15000);
      };
    }
    connect();

    if (!thread) return;
    var earlier = $("earlier");
    if (earlier) earlier.addEventListener("click", function () {
      var list = $("messages"), first = list.firstElementChild;
      earlier.disabled = true;
      fetchHTML(base + "?fragment=messages&before_seq=" + (first ? first.dataset.seq : lastSeq + 1)).then(function (html) {
        var older = fragment(html);
        earlier.hidden = !older.firstElementChild || Number(older.firstElementChild.dataset.seq) <= 1;
        list.insertBefore(older, list.firstElementChild);
      }).catch(ended).then(function () { earlier.disabled = false; });
    });
    markRead();
    var list = $("messages");
    list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "end" });
    replyBox(base, syncThread);
  }

  function replyBox(base, onSent) {
    var form = $("reply"), box = form.querySelector("textarea"), send = form.querySelector("button"), err = $("reply-error");
    var typingSent = 0, idleTimer;

    function typing(on) {
      post(base + "/typing", { typing: on });
      typingSent = on ? Date.now() : 0;
    }
    box.addEventListener("input", function () {
      clearTimeout(idleTimer);
      if (!box.value) { if (typingSent) typing(false); return; }
      if (Date.now() - typingSent > 3000) typing(true);
      idleTimer = setTimeout(function () { if (typingSent) typing(false); }, 5000);
    });
    box.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    var files = attachments(form, err, function () { box.required = !files.ids().length; });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var ids = files.ids();
      if ((!box.value.trim() && !ids.length) || send.disabled || files.busy()) return;
      send.disabled = true;
      clearTimeout(idleTimer);
      typingSent = 0;
      var data = new URLSearchParams({ body: box.value });
      ids.forEach(function (id) { data.append("attachment_ids", id); });
      post(form.action, data).then(function (res) {
        if (res.ok) {
          box.value = "";
          files.clear();
          err.hidden = true;
          // The socket brings the reply too; this covers a dropped socket.
          onSent();
          return;
        }
        return errorMessage(res).then(function (m) { throw new Error(m); });
      }).catch(function (e) {
        err.textContent = "Not sent: " + (e.message || "the server could not be reached") + " Your reply is still in the box.";
        err.hidden = false;
      }).then(function () {
        send.disabled = false;
        box.focus();
      });
    });
  }

  // attachments uploads the files picked in the reply form as soon as they
  // are picked, and lists them (by name, as text) until the reply that
  // carries them is sent.
  function attachments(form, err, changed) {
    var label = form.querySelector(".attach"), input = label.querySelector("input"), list = $("pending-files");
    var pending = [], uploading = 0;
    label.hidden = false;
    function show() {
      list.replaceChildren();
      pending.forEach(function (a, i) {
        var li = document.createElement("li"), remove = document.createElement("button");
        li.textContent = a.name + " ";
        remove.type = "button";
        remove.className = "link";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", "Remove " + a.name);
        remove.addEventListener("click", function () { pending.splice(i, 1); show(); });
        li.appendChild(remove);
        list.appendChild(li);
      });
      changed();
    }
    input.addEventListener("change", function () {
      Array.prototype.forEach.call(input.files, function (file) {
        var body = new FormData();
        body.append("file", file);
        uploading++;
        fetch(form.dataset.attachUrl, { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" }, body: body }).then(function (res) {
          if (!res.ok) return errorMessage(res).then(function (m) { throw new Error(m); });
          return res.json().then(function (j) { pending.push(j.attachment); show(); });
        }).catch(function (e) {
          err.textContent = file.name + " was not attached: " + (e.message || "the server could not be reached");
          err.hidden = false;
        }).then(function () { uploading--; });
      });
      input.value = "";
    });
    return {
      ids: function () { return pending.map(function (a) { return a.id; }); },
      busy: function () { return uploading > 0; },
      clear: function () { pending = []; show(); }
    };
  }
})();
