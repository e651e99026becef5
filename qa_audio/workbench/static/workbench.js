// The call page's evidence and keyboard shortcuts; the player and timeline are /player.js
// (qa_audio/report/player.js, shared with the HTML report). No inline script: the
// Content-Security-Policy allows these files only.
(function () {
  'use strict';
  var player = document.getElementById('player');
  if (!player) { return; }
  var form = document.getElementById('review-form');
  var evidence = Array.prototype.slice.call(document.querySelectorAll('a.evidence'));
  var current = -1;

  evidence.forEach(function (link, index) {
    link.addEventListener('click', function () { mark(index); });  // player.js seeks
  });
  function row(itemId) { return document.getElementById('item-' + itemId); }
  function mark(index) {
    evidence.forEach(function (a) { a.classList.remove('current'); });
    document.querySelectorAll('tr.item.current').forEach(function (r) { r.classList.remove('current'); });
    current = index;
    var link = evidence[index];
    link.classList.add('current');
    var r = row(link.getAttribute('data-item'));
    if (r) { r.classList.add('current'); r.scrollIntoView({block: 'nearest'}); }
  }
  function step(by) {
    if (!evidence.length) { return; }
    var index = current < 0 ? (by > 0 ? 0 : evidence.length - 1) : (current + by + evidence.length) % evidence.length;
    evidence[index].click();
  }
  function confirmItem(itemId) {
    var r = row(itemId);
    if (!r) { return; }
    var prefill = r.getAttribute('data-prefill');
    var select = document.getElementById('score-' + itemId);
    if (prefill !== '' && select) { select.value = prefill; }
    r.classList.add('confirmed');
  }
  document.querySelectorAll('button.confirm').forEach(function (button) {
    button.addEventListener('click', function () { confirmItem(button.getAttribute('data-item')); });
  });
  function currentItem() {
    var r = document.querySelector('tr.item.current');
    if (r) { return r.getAttribute('data-item'); }
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('tr.item');
    if (focused) { return focused.getAttribute('data-item'); }
    var next = document.querySelector('tr.item:not(.confirmed)');
    return next ? next.getAttribute('data-item') : null;
  }
  function submitAndNext() {
    var button = document.getElementById('submit-next');
    if (form.requestSubmit) { form.requestSubmit(button); } else { button.click(); }
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); submitAndNext(); return; }
    var tag = (ev.target.tagName || '').toLowerCase();
    if (tag === 'textarea' || tag === 'input' || tag === 'select' || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.key === ' ') { ev.preventDefault(); if (player.paused) { player.play(); } else { player.pause(); } }
    else if (ev.key === 'j' || ev.key === 'J') { ev.preventDefault(); step(1); }
    else if (ev.key === 'k' || ev.key === 'K') { ev.preventDefault(); step(-1); }
    else if (ev.key === 'c' || ev.key === 'C') {
      ev.preventDefault();
      var item = currentItem();
      if (item) { confirmItem(item); }
    }
  });
}());
