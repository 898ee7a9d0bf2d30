// The staff scanner: JS-SDK config from our server → wx.scanQRCode({needResult: 1}) → the scanned text is posted
// (with the page's CSRF token) to /staff/scan, which redeems it as the scan page does and shows the result.
(function () {
  "use strict";
  var button = document.getElementById("scan");
  var status = document.getElementById("scan-status");
  var form = document.getElementById("scan-form");
  var scanned = document.getElementById("scanned");
  if (!button || !form) { return; }
  function say(state, text) { status.setAttribute("data-state", state); status.textContent = text; }
  if (!window.wx) { say("error", "请在微信中打开本页，或手动输入券码 · Open this page in WeChat, or type the code"); return; }
  fetch("/api/v1/jssdk/config?apis=scanQRCode&url=" + encodeURIComponent(location.href.split("#")[0]),
    { credentials: "same-origin" })
    .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
    .then(function (cfg) {
      if (!cfg.ok) { say("error", cfg.body.error ? cfg.body.error.message : "config failed"); return; }
      wx.error(function (e) { say("error", "微信扫一扫不可用，请手动输入券码 · Scanner unavailable (" + e.errMsg + "): type the code"); });
      wx.ready(function () { button.disabled = false; say("ready", "点「扫一扫」对准券码 · Tap Scan and point at the code"); });
      wx.config({ appId: cfg.body.appId, timestamp: cfg.body.timestamp, nonceStr: cfg.body.nonceStr,
        signature: cfg.body.signature, jsApiList: ["scanQRCode"] });
    })
    .catch(function () { say("error", "网络错误，请重试 · Network error: reload the page"); });
  button.addEventListener("click", function () {
    wx.scanQRCode({
      needResult: 1,
      scanType: ["qrCode", "barCode"],
      success: function (res) {
        // A barcode comes as "FORMAT,code": keep the code.
        var text = String(res.resultStr || "");
        if (text.indexOf(",") > 0 && text.indexOf("http") !== 0) { text = text.slice(text.indexOf(",") + 1); }
        scanned.value = text;
        button.disabled = true;
        say("working", "正在核销… · Redeeming…");
        form.submit();
      },
      cancel: function () { say("ready", "已取消 · Cancelled"); }
    });
  });
})();
