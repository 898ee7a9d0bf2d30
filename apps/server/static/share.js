// The share demo: config from our server → wx.config (the simulator's stand-in checks it as WeChat does).
(function () {
  "use strict";
  var status = document.getElementById("status");
  function say(state, text) { status.setAttribute("data-state", state); status.textContent = text; }
  if (!window.wx) { say("error", "JS-SDK script missing"); return; }
  var tamper = /[?&]tamper=1/.test(location.search);
  fetch("/api/v1/jssdk/config?url=" + encodeURIComponent(location.href.split("#")[0]), { credentials: "same-origin" })
    .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
    .then(function (res) {
      if (!res.ok) { say("error", res.body.error ? res.body.error.message : "config failed"); return; }
      var cfg = res.body;
      if (tamper) { cfg.signature = cfg.signature.replace(/^./, cfg.signature[0] === "0" ? "1" : "0"); }
      wx.ready(function () {
        say("ready", "wx.ready ✓ — 分享已就绪 · sharing is set up");
        wx.updateAppMessageShareData({ title: "wxkit", desc: "share demo", link: location.href, imgUrl: "" });
      });
      wx.error(function (e) { say("error", "wx.error: " + e.errMsg); });
      wx.config({ debug: false, appId: cfg.appId, timestamp: cfg.timestamp, nonceStr: cfg.nonceStr,
        signature: cfg.signature, jsApiList: cfg.jsApiList });
    })
    .catch(function () { say("error", "network error"); });
})();
