// Camera capture for the identity check: where the browser can use a camera,
// "Use the camera" takes a still into the file field; the file field itself
// stays as the fallback (and opens the camera directly on phones).
(function () {
  "use strict";
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof DataTransfer === "undefined") return;
  var panel = document.querySelector(".camera");
  if (!panel) return;
  var video = panel.querySelector("video");
  var stream = null;
  var target = null;

  function stop() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    panel.hidden = true;
  }

  document.querySelectorAll("[data-camera]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      target = document.getElementById(button.getAttribute("data-camera"));
      navigator.mediaDevices
        .getUserMedia({ video: { facingMode: button.getAttribute("data-facing") || "user" }, audio: false })
        .then(function (s) {
          stream = s;
          video.srcObject = s;
          panel.hidden = false;
          return video.play();
        })
        .catch(function () {
          stop();
          button.hidden = true;
          target.focus();
        });
    });
  });

  panel.querySelector("[data-close]").addEventListener("click", stop);
  panel.querySelector("[data-snap]").addEventListener("click", function () {
    if (!stream || !target) return;
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      var files = new DataTransfer();
      files.items.add(new File([blob], target.name + ".jpg", { type: "image/jpeg" }));
      target.files = files.files;
      stop();
    }, "image/jpeg", 0.9);
  });
})();
