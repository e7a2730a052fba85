// Reads a chosen CSV file into the textarea named by the input's data-fills,
// so the upload works with a file or with pasted text alike.
document.querySelectorAll('input[type="file"][data-fills]').forEach((input) => {
  input.addEventListener('change', () => {
    const file = input.files && input.files[0];
    const target = document.getElementById(input.dataset.fills);
    if (!file || !target) return;
    file.text().then((text) => { target.value = text; });
  });
});
