// Progressive enhancement only: the page works without it.
document.addEventListener("DOMContentLoaded", function () {
  var wallet = document.getElementById("wallet");
  var walletForm = document.getElementById("wallet-form");
  if (wallet && walletForm) {
    wallet.addEventListener("change", function () { walletForm.submit(); });
  }
  var sendForm = document.getElementById("send-form");
  if (sendForm) {
    sendForm.addEventListener("submit", function () {
      var button = document.getElementById("send");
      // The idempotency key already makes a second submit harmless; this just shows that we are working.
      if (button) { setTimeout(function () { button.disabled = true; button.textContent = "Sending…"; }, 0); }
    });
  }
});
