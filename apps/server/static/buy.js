// The coupon purchase page: order → pay (JSAPI: wx.chooseWXPay; NATIVE: a code to scan; H5: WeChat's cashier page) → wait for our server to
// see the payment (its notify or the reconciler) → the new coupon's page. The front end never decides "paid": it
// polls the order, as WeChat tells merchants to.
(function () {
  "use strict";
  var box = document.getElementById("buy");
  var button = document.getElementById("buy-button");
  var status = document.getElementById("status");
  if (!box || !button) { return; }
  var campaign = Number(box.getAttribute("data-campaign"));
  var price = Number(box.getAttribute("data-price"));
  var mode = box.getAttribute("data-mode");
  var cashier = box.getAttribute("data-cashier");
  function say(state, text) { status.setAttribute("data-state", state); status.textContent = text; }
  function api(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; }); });
  }
  // What a refusal means to the buyer, in both languages (the API's message is for developers).
  var REFUSALS = {
    limit_reached: "你已达到本活动的购买上限 · You have reached this offer's limit",
    sold_out: "已售罄 · Sold out",
    campaign_ended: "活动已结束 · This offer has ended",
    not_for_sale: "本券不出售 · This coupon is not for sale",
    price_changed: "价格已变，请刷新页面再买 · The price changed: reload the page and buy again",
    open_order: "你有一笔未付款的订单，请先完成支付或稍后再试 · You have an unpaid order: pay it, or try again later",
    too_many_orders: "下单太频繁，请稍后再试 · Too many orders just now: try again in a moment",
    too_many_open_orders: "未付款的订单太多，请先完成支付或稍后再试 · Too many unpaid orders: pay one, or try again later",
    unauthorized: "登录已过期，请刷新页面 · Your login expired: reload the page",
    rate_limited: "操作太频繁，请稍后再试 · Too many tries: wait a moment"
  };
  function failed(res) {
    button.disabled = false;
    var e = res.body && res.body.error;
    say("error", (e && REFUSALS[e.code]) || "出错了，请重试 · Something went wrong: try again" + (e ? " (" + e.message + ")" : ""));
  }
  // Polls the order until it is paid (then off to the coupon), closed, or we give up waiting.
  function watch(no, tries) {
    api("GET", "/api/v1/pay/orders/" + encodeURIComponent(no)).then(function (res) {
      if (!res.ok) { failed(res); return; }
      var o = res.body;
      if (o.status === "paid" && o.coupon_url) {
        say("paid", "支付成功 ✓ 正在打开您的券… · Paid ✓ opening your coupon…");
        location.assign(o.coupon_url);
      } else if (o.status === "closed" || o.status === "expired") {
        button.disabled = false;
        say("error", "订单已关闭，请重新购买 · The order is closed: buy again");
      } else if (tries > 300) {
        button.disabled = false;
        say("error", "还没收到支付结果：稍后在「我的券」查看 · No payment seen yet: check My coupons later");
      } else {
        setTimeout(function () { watch(no, tries + 1); }, tries < 20 ? 500 : 2000);
      }
    }).catch(function () { setTimeout(function () { watch(no, tries + 1); }, 2000); });
  }
  // Back from the cashier: the order number is in the address, the outcome in the fragment.
  var back = new URLSearchParams(location.search).get("order");
  if (back) {
    if (/wxpay=cancel/.test(location.hash)) {
      say("cancelled", "已取消支付 · Payment cancelled");
    } else {
      button.disabled = true;
      say("waiting", "正在确认支付结果… · Confirming the payment…");
      watch(back, 0);
    }
  }
  function payJsapi(no, p) {
    api("GET", "/api/v1/jssdk/config?apis=chooseWXPay&url=" + encodeURIComponent(location.href.split("#")[0]))
      .then(function (res) {
        if (!res.ok) { failed(res); return; }
        var cfg = res.body;
        // The page's WeChat setup failed: another tap would only place another order. Say what to do instead.
        wx.error(function (e) {
          button.disabled = true;
          say("error", "微信支付暂不可用，请刷新页面重试 · WeChat Pay is unavailable here: reload the page (" + e.errMsg + ")");
        });
        wx.ready(function () {
          wx.chooseWXPay({
            timestamp: p.timeStamp, nonceStr: p.nonceStr, package: p["package"], signType: p.signType, paySign: p.paySign,
            success: function () { say("waiting", "正在确认支付结果… · Confirming the payment…"); watch(no, 0); },
            cancel: function () { button.disabled = false; say("cancelled", "已取消支付 · Payment cancelled"); },
            fail: function (e) { button.disabled = false; say("error", "支付失败 · Payment failed: " + e.errMsg); }
          });
        });
        wx.config({ appId: cfg.appId, timestamp: cfg.timestamp, nonceStr: cfg.nonceStr, signature: cfg.signature,
          jsApiList: ["chooseWXPay"] });
      });
  }
  button.addEventListener("click", function () {
    button.disabled = true;
    say("ordering", "正在下单… · Placing the order…");
    var trade = mode === "jsapi" ? "JSAPI" : mode === "h5" ? "H5" : "NATIVE";
    api("POST", "/api/v1/pay/orders", { campaign_id: campaign, total_fee: price, trade_type: trade }).then(function (res) {
      if (!res.ok) { failed(res); return; }
      var no = res.body.out_trade_no;
      // The order number goes into the address first, so coming back from the cashier (or a reload) finds it.
      var here = new URL(location.href);
      here.searchParams.set("order", no);
      here.hash = "";
      history.replaceState(null, "", here.toString());
      if (trade === "H5") {
        // WeChat's H5 cashier, then back here (WeChat says nothing of the outcome: this page asks the server).
        say("waiting", "正在打开微信支付… · Opening WeChat Pay…");
        location.assign(res.body.h5_url + "&redirect_url=" + encodeURIComponent(here.toString()));
      } else if (trade === "JSAPI") {
        if (!window.wx) { failed({ body: { error: { message: "请在微信中打开本页 · Open this page in WeChat" } } }); return; }
        payJsapi(no, res.body.pay_params);
      } else {
        document.getElementById("native-qr").src = res.body.qr_url;
        document.getElementById("native").hidden = false;
        var sim = document.getElementById("sim-scan");
        if (sim && cashier) {
          // The phone that scans stays in WeChat (its own "paid" screen); this page sees the payment by itself.
          sim.href = cashier + "?code_url=" + encodeURIComponent(res.body.code_url);
        }
        say("waiting", "等待扫码支付… · Waiting for the payment…");
        watch(no, 0);
      }
    }).catch(function () { failed({}); });
  });
})();
