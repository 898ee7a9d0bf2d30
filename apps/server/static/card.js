// "Add to WeChat" on a card-backed coupon: JS-SDK config → cardExt from our server (signed with the wx_card ticket,
// bound to the owner, the coupon's code as outer_str) → wx.addCard. WeChat then pushes user_get_card to our server,
// which links the card code to the coupon; the page reloads to show it.
(function () {
  "use strict";
  var box = document.getElementById("add-card-box");
  var button = document.getElementById("add-card");
  var status = document.getElementById("card-status");
  if (!box || !button) { return; }
  var code = box.getAttribute("data-code");
  function say(state, text) { status.setAttribute("data-state", state); status.textContent = text; }
  function get(url) {
    return fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); });
  }
  function failed(text) { button.disabled = false; say("error", text); }
  button.addEventListener("click", function () {
    if (!window.wx) { failed("请在微信中打开本页 · Open this page in WeChat"); return; }
    button.disabled = true;
    say("working", "正在打开微信卡包… · Opening WeChat's card bag…");
    Promise.all([
      get("/api/v1/jssdk/config?apis=addCard&url=" + encodeURIComponent(location.href.split("#")[0])),
      get("/api/v1/coupons/" + encodeURIComponent(code) + "/card-ext")
    ]).then(function (res) {
      var cfg = res[0], ext = res[1];
      if (!cfg.ok) { failed(cfg.body.error ? cfg.body.error.message : "config failed"); return; }
      if (!ext.ok) { failed(ext.body.error ? ext.body.error.message : "card-ext failed"); return; }
      wx.error(function (e) { failed("微信卡包不可用 · WeChat card bag unavailable: " + e.errMsg); });
      wx.ready(function () {
        wx.addCard({
          cardList: [{ cardId: ext.body.cardId, cardExt: ext.body.cardExt }],
          success: function () {
            say("added", "已加入微信卡包 ✓ · Added to WeChat");
            setTimeout(function () { location.reload(); }, 1500);
          },
          cancel: function () { failed("已取消 · Cancelled"); },
          fail: function (e) { failed("未能加入 · Not added: " + e.errMsg); }
        });
      });
      wx.config({ appId: cfg.body.appId, timestamp: cfg.body.timestamp, nonceStr: cfg.body.nonceStr,
        signature: cfg.body.signature, jsApiList: ["addCard"] });
    }).catch(function () { failed("网络错误 · Network error"); });
  });
})();
