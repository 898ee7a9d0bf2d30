// wxkit simulator: a stand-in for WeChat's JS-SDK (jweixin). wx.config sends the page's config to the simulator,
// which checks the signature against the jsapi_ticket it issued, exactly as WeChat does; then wx.ready or
// wx.error({errMsg: "config:invalid signature"}) fires. Share APIs succeed once configured. wx.chooseWXPay opens the
// simulator's cashier, which checks paySign as WeChat does; the cashier then returns to this page (without its
// fragment) with #wxpay=ok, #wxpay=cancel or #wxpay=fail — pages learn the outcome from their server, as WeChat
// tells them to. wx.scanQRCode opens a stand-in scanner over the page: the person (or a test) types or pastes what
// the camera "saw" and taps 扫描; with needResult: 1 the page gets it as resultStr, as WeChat gives it.
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = script ? new URL(script.src).origin : "";
  var readyFns = [], errorFns = [], state = "new", lastError = null, appId = "";
  function fire(list, arg) { list.forEach(function (f) { try { f(arg); } catch (e) { /* page's own error */ } }); }
  function call(name, opts, ok) {
    opts = opts || {};
    if (state !== "ready") {
      if (opts.fail) { opts.fail({ errMsg: name + ":permission denied" }); }
      return;
    }
    var res = Object.assign({ errMsg: name + ":ok" }, ok || {});
    if (opts.success) { opts.success(res); }
    if (opts.complete) { opts.complete(res); }
  }
  window.wx = {
    config: function (cfg) {
      state = "verifying";
      appId = cfg.appId;
      var body = JSON.stringify({
        appId: cfg.appId, timestamp: cfg.timestamp, nonceStr: cfg.nonceStr, signature: cfg.signature,
        jsApiList: cfg.jsApiList || [], url: location.href.split("#")[0]
      });
      // text/plain keeps this a simple cross-origin request (no preflight).
      fetch(origin + "/_sim/js/verify", { method: "POST", headers: { "Content-Type": "text/plain" }, body: body })
        .then(function (r) { return r.json(); })
        .then(function (res) {
          if (res.errMsg === "config:ok") { state = "ready"; fire(readyFns); }
          else { state = "error"; lastError = { errMsg: res.errMsg }; fire(errorFns, lastError); }
        })
        .catch(function () { state = "error"; lastError = { errMsg: "config:fail" }; fire(errorFns, lastError); });
    },
    ready: function (f) { if (state === "ready") { f(); } else { readyFns.push(f); } },
    error: function (f) { if (state === "error") { f(lastError); } else { errorFns.push(f); } },
    checkJsApi: function (opts) { call("checkJsApi", opts, { checkResult: {} }); },
    updateAppMessageShareData: function (opts) { call("updateAppMessageShareData", opts); },
    updateTimelineShareData: function (opts) { call("updateTimelineShareData", opts); },
    addCard: function (opts) {
      opts = opts || {};
      if (state !== "ready") {
        if (opts.fail) { opts.fail({ errMsg: "addCard:permission denied" }); }
        return;
      }
      var body = JSON.stringify({ appId: appId, cardList: opts.cardList || [] });
      fetch(origin + "/_sim/js/add_card", { method: "POST", headers: { "Content-Type": "text/plain" }, body: body })
        .then(function (r) { return r.json(); })
        .then(function (res) {
          if (res.errMsg === "addCard:ok") { if (opts.success) { opts.success(res); } }
          else if (opts.fail) { opts.fail({ errMsg: res.errMsg }); }
        })
        .catch(function () { if (opts.fail) { opts.fail({ errMsg: "addCard:fail" }); } });
    },
    scanQRCode: function (opts) {
      opts = opts || {};
      if (state !== "ready") {
        if (opts.fail) { opts.fail({ errMsg: "scanQRCode:permission denied" }); }
        return;
      }
      var box = document.createElement("div");
      box.id = "wx-scan";
      box.style.position = "fixed"; box.style.left = "0"; box.style.right = "0"; box.style.bottom = "0";
      box.style.padding = "16px"; box.style.background = "#111"; box.style.color = "#fff"; box.style.zIndex = "9999";
      var label = document.createElement("p");
      label.textContent = "扫一扫（模拟）· What did the camera see?";
      var input = document.createElement("input");
      input.id = "wx-scan-input"; input.style.width = "100%";
      input.placeholder = "二维码内容 · the code's text or URL";
      var ok = document.createElement("button");
      ok.id = "wx-scan-ok"; ok.type = "button"; ok.textContent = "扫描 · Scan";
      var cancel = document.createElement("button");
      cancel.id = "wx-scan-cancel"; cancel.type = "button"; cancel.textContent = "取消 · Cancel";
      box.appendChild(label); box.appendChild(input); box.appendChild(ok); box.appendChild(cancel);
      document.body.appendChild(box);
      input.focus();
      ok.addEventListener("click", function () {
        var text = input.value;
        box.remove();
        var res = { errMsg: "scanQRCode:ok" };
        if (opts.needResult === 1) { res.resultStr = text; }
        if (opts.success) { opts.success(res); }
        if (opts.complete) { opts.complete(res); }
      });
      cancel.addEventListener("click", function () {
        box.remove();
        var res = { errMsg: "scanQRCode:cancel" };
        if (opts.cancel) { opts.cancel(res); }
        if (opts.complete) { opts.complete(res); }
      });
    },
    chooseWXPay: function (opts) {
      opts = opts || {};
      if (state !== "ready") {
        if (opts.fail) { opts.fail({ errMsg: "chooseWXPay:permission denied" }); }
        return;
      }
      var q = new URLSearchParams({
        appId: appId, timeStamp: String(opts.timestamp), nonceStr: opts.nonceStr || "", "package": opts["package"] || "",
        signType: opts.signType || "MD5", paySign: opts.paySign || "", return_url: location.href.split("#")[0]
      });
      location.assign(origin + "/_sim/pay/cashier?" + q.toString());
    }
  };
})();
