// The player and its timeline, shared by the HTML report (inlined) and the workbench's call page
// (served): every [data-t] element seeks the player, a click on the timeline's track seeks to that
// moment, the playhead follows the player, and #t=SECONDS in the address seeks on load.
(function () {
  'use strict';
  var player = document.getElementById('player');
  var geomNode = document.getElementById('tl-geom');
  if (!player || !geomNode) { return; }
  var geom = JSON.parse(geomNode.textContent);
  function seek(t) {
    player.currentTime=t;  // spelt so: tests/test_report_html.py looks for it
    var p = player.play();
    if (p && p.catch) { p.catch(function () {}); }
  }
  document.querySelectorAll('[data-t]').forEach(function (el) {
    el.addEventListener('click', function (ev) { ev.preventDefault(); seek(parseFloat(el.getAttribute('data-t'))); });
  });
  var svg = document.getElementById('timeline');
  svg.addEventListener('click', function (ev) {
    if (ev.target.hasAttribute('data-t')) { return; }
    var box = svg.getBoundingClientRect();
    var ux = (ev.clientX - box.left) * geom.width / box.width;
    var t = (ux - geom.left) / geom.span * geom.duration;
    if (t >= 0 && t <= geom.duration) { seek(t); }
  });
  var head = document.getElementById('playhead');
  player.addEventListener('timeupdate', function () {
    var x = geom.left + Math.min(player.currentTime, geom.duration) / geom.duration * geom.span;
    head.setAttribute('x1', x); head.setAttribute('x2', x);
  });
  var m = /#t=([0-9.]+)/.exec(location.hash);
  if (m) {
    var t = parseFloat(m[1]);
    if (player.readyState >= 1) { player.currentTime = t; }
    else { player.addEventListener('loadedmetadata', function () { player.currentTime = t; }, {once: true}); }
  }
}());
