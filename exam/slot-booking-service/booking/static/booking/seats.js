// Live seat counts: when htmx swaps in a new count (out of band, every few seconds), the
// Book / Move here button of that slot follows it: disabled while the slot is full.
document.addEventListener("htmx:oobAfterSwap", function (event) {
  var cell = event.target; // the element swapped in (detail.target is the old one)
  if (!cell || !cell.id || cell.id.indexOf("seats-") !== 0) return;
  var full = cell.classList.contains("full");
  document.querySelectorAll('button[data-seats="' + cell.id + '"]').forEach(function (button) {
    button.disabled = full;
  });
});
