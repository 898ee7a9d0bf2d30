// The holder's coupon page follows the coupon's status: when staff redeem it, the QR goes and 核销成功 shows,
// without a reload. A poll of a session-bound endpoint every 2 s (slower when told to wait), stopped once the
// coupon can no longer change, when the page is hidden for long, or after 30 minutes.
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live) return;
  var code = live.getAttribute('data-code');
  var shown = live.getAttribute('data-status');
  var started = Date.now();
  var delay = 2000;
  function show(s) {
    var badge = document.getElementById('status');
    if (badge) {
      badge.className = 'status ' + s.status;
      badge.setAttribute('data-status', s.status);
      badge.textContent = s.status_zh + ' · ' + s.status_en;
    }
    if (s.status !== 'issued') {
      var qr = document.getElementById('qr-box');
      if (qr) qr.parentNode.removeChild(qr);
      var add = document.getElementById('add-card-box');
      if (add) add.parentNode.removeChild(add);
    }
    var box = document.getElementById('live-notice');
    var text = document.getElementById('live-text');
    if (box && text && s.notice) {
      text.textContent = s.notice;
      text.className = (s.status === 'redeemed' ? 'ok' : 'err') + ' notice';
      box.hidden = false;
      var old = document.getElementById('notice');
      if (old) old.parentNode.removeChild(old);
    }
    live.setAttribute('data-status', s.status);
  }
  function poll() {
    if (Date.now() - started > 30 * 60 * 1000) return;
    var xhr = new XMLHttpRequest();
    xhr.open('GET', '/c/' + encodeURIComponent(code) + '/status');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.onload = function () {
      if (xhr.status === 200) {
        var s;
        try { s = JSON.parse(xhr.responseText); } catch (e) { s = null; }
        if (s && s.status !== shown) {
          // Not valid yet → valid: reload to show the QR code.
          if (shown === 'pending' && s.status === 'issued') { window.location.reload(); return; }
          shown = s.status;
          show(s);
        }
        if (s && s.status !== 'issued' && s.status !== 'pending') return;
        delay = 2000;
      } else if (xhr.status === 429) {
        var wait = parseInt(xhr.getResponseHeader('Retry-After') || '10', 10);
        delay = Math.max(delay, wait * 1000);
      } else if (xhr.status === 401 || xhr.status === 404) {
        return;
      } else {
        delay = Math.min(delay * 2, 30000);
      }
      setTimeout(poll, delay);
    };
    xhr.onerror = function () { delay = Math.min(delay * 2, 30000); setTimeout(poll, delay); };
    xhr.send();
  }
  setTimeout(poll, delay);
})();
