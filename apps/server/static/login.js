// The login page: asks for a scene, shows its mini-program code, listens on the scene's WebSocket, exchanges the
// one-time ticket for the session cookie, then goes to the return path. A code that expires is replaced by itself.
(function () {
  "use strict";
  var box = document.getElementById("login");
  var qr = document.getElementById("qr");
  var status = document.getElementById("status");
  var refresh = document.getElementById("refresh");
  var confirmBox = document.getElementById("confirm-login");
  var continueButton = document.getElementById("continue-login");
  var notMeButton = document.getElementById("not-me");
  var pendingTicket = null;
  var returnPath = box.getAttribute("data-return") || "/account";
  var socket = null;
  var done = false;

  function say(state, zh, en) {
    status.setAttribute("data-state", state);
    status.textContent = zh + " ";
    var span = document.createElement("span");
    span.className = "en";
    span.textContent = en;
    status.appendChild(span);
  }

  function exchange(ticket) {
    say("confirmed", "已确认，正在登录…", "Confirmed, logging you in…");
    fetch("/auth/ticket", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ticket: ticket })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (res.ok) {
        done = true;
        window.location.assign(res.body["return"] || returnPath);
      } else {
        say("error", "登录失败，请重新扫码", "Login failed: scan the new code");
        start();
      }
    }).catch(function () {
      say("error", "网络错误，请重试", "Network error: try again");
      refresh.hidden = false;
    });
  }

  function listen(url) {
    if (socket) { var old = socket; socket = null; old.close(); }
    var ws = new WebSocket(url);
    socket = ws;
    ws.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (e.event === "waiting") {
        say("waiting", "请用微信扫码", "Scan with WeChat");
      } else if (e.event === "scanned") {
        say("scanned", "已扫码：" + (e.nickname || "微信用户") + "，请在手机上确认",
          "Scanned by " + (e.nickname || "a WeChat user") + ": confirm on the phone");
      } else if (e.event === "confirmed" && e.ticket) {
        // Ask before spending the ticket: a code photographed and confirmed by someone else must not log this
        // browser in as them without this person seeing who it is.
        socket = null;
        pendingTicket = e.ticket;
        var who = e.nickname || "微信用户";
        say("confirm", "以「" + who + "」的身份登录？", "Log in as " + (e.nickname || "this WeChat user") + "?");
        confirmBox.hidden = false;
        continueButton.focus();
      } else if (e.event === "confirmed") {
        // Confirmed and already used (another tab of this browser): the session may be here already.
        socket = null;
        window.location.reload();
      } else if (e.event === "cancelled") {
        socket = null;
        // Say so first, then a new code: a code that silently changes looks like a glitch.
        say("cancelled", "已取消 · 手机上取消了登录，稍后换新码", "Cancelled on the phone: a new code follows");
        setTimeout(start, 2500);
      } else if (e.event === "expired") {
        socket = null;
        say("expired", "二维码已过期，已换新码", "The code expired: here is a new one");
        start();
      }
    };
    ws.onclose = function () {
      // Lost without a final event: reconnect; the server sends the scene's current state first.
      if (!done && socket === ws) {
        setTimeout(function () { if (!done && socket === ws) { listen(url); } }, 1000);
      }
    };
  }

  function start() {
    refresh.hidden = true;
    confirmBox.hidden = true;
    fetch("/api/v1/login/scenes", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ "return": returnPath })
    }).then(function (r) {
      if (!r.ok) { throw new Error("status " + r.status); }
      return r.json();
    }).then(function (s) {
      qr.src = s.qr_url;
      if (s.sandbox_phone_url) {
        document.getElementById("phone-link").href = s.sandbox_phone_url;
        document.getElementById("sandbox-phone").hidden = false;
      }
      qr.setAttribute("data-scene", s.scene);
      listen(s.ws_url);
    }).catch(function () {
      say("error", "暂时无法生成二维码", "Could not make a code right now");
      refresh.hidden = false;
    });
  }

  continueButton.addEventListener("click", function () {
    var ticket = pendingTicket;
    pendingTicket = null;
    confirmBox.hidden = true;
    if (ticket) { exchange(ticket); }
  });
  notMeButton.addEventListener("click", function () {
    pendingTicket = null;
    confirmBox.hidden = true;
    say("cancelled", "已放弃，请用你自己的微信扫新码", "Not you: scan the new code with your own WeChat");
    start();
  });
  refresh.addEventListener("click", start);
  start();
})();
