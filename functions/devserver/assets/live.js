// Live refresh for the dev server's pages: every few seconds, fetches the live part of the
// page (the element #live names it in data-source: the list with the same filters, or one
// record) and swaps it in. Stops once a record is settled (it carries data-settled), waits
// while the tab is hidden or text in it is selected. Without JavaScript the pages work the
// same; they just do not refresh themselves.
(function () {
  'use strict';
  var live = document.getElementById('live');
  var note = document.getElementById('live-note');
  if (!live || !window.fetch) {
    return;
  }
  var source = live.getAttribute('data-source');
  var every = parseInt(live.getAttribute('data-every'), 10) || 3000;

  function say(text) {
    if (note) {
      note.textContent = text;
    }
  }
  function settled() {
    return live.querySelector('[data-settled]') !== null;
  }
  function selecting() {
    var selection = window.getSelection && window.getSelection();
    return selection && !selection.isCollapsed && live.contains(selection.anchorNode);
  }
  function schedule() {
    if (settled()) {
      say('');
      return;
    }
    window.setTimeout(tick, every);
  }
  function tick() {
    if (document.hidden || selecting()) {
      schedule();
      return;
    }
    fetch(source, { cache: 'no-store', credentials: 'same-origin' })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error('HTTP ' + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        say('Live · updated ' + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        say('Live refresh failed (' + error.message + '); trying again');
      })
      .then(schedule);
  }

  if (!settled()) {
    say('Live · refreshes every ' + every / 1000 + ' s');
  }
  schedule();
})();
