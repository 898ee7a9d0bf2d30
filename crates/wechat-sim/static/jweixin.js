// wxkit simulator: a stand-in for WeChat's JS-SDK (jweixin). wx.config sends the page's config to the simulator,
// which checks the signature against the jsapi_ticket it issued, exactly as WeChat does; then wx.ready or
// wx.error({errMsg: "config:invalid signature"}) fires. Share APIs succeed once configured. wx.chooseWXPay opens the
// simulator's cashier, which checks paySign as WeChat does; the cashier then returns to this page (without its
// fragment) with #wxpay=ok, #wxpay=cancel or #wxpay=fail — pages learn the outcome from their server, as WeChat
// tells them to.
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
