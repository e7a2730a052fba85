// The Studio's editors, improved in the page. Everything here also works
// without this script: each button below is a submit button the server
// answers with the form changed (learning/block_editor.rs). With it, the
// kind of block and of question switch their fields at once, questions and
// choices are added and removed in place, the Markdown preview follows the
// typing, an image is uploaded into the text where the cursor is, and blocks,
// units and sections are reordered by drag and drop.
(function () {
  'use strict';

  const MAX_QUESTIONS = 100;
  const MAX_CHOICES = 20;

  function csrfToken() {
    const input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : '';
  }

  // The buttons that only matter without a script ("Show its fields").
  document.querySelectorAll('.studio-nojs').forEach((el) => { el.hidden = true; });

  // --- Kind of block: only the chosen kind's fieldset is shown and sent.
  function showKind(select) {
    const form = select.form;
    if (!form) return;
    form.querySelectorAll('fieldset[data-kind]').forEach((fs) => {
      const on = fs.dataset.kind === select.value;
      fs.hidden = !on;
      fs.disabled = !on;
    });
  }
  document.querySelectorAll('select[data-kind-switch]').forEach((select) => {
    select.addEventListener('change', () => showKind(select));
  });

  // --- Kind of question: choices, a number or accepted texts.
  function showQuestionKind(select) {
    const question = select.closest('[data-question]');
    if (!question) return;
    question.querySelectorAll('[data-for-kinds]').forEach((el) => {
      el.hidden = !el.dataset.forKinds.split(' ').includes(select.value);
    });
  }
  document.addEventListener('change', (e) => {
    const select = e.target.closest && e.target.closest('select[data-question-kind]');
    if (select) showQuestionKind(select);
  });

  // --- Questions and choices added and removed in place, renumbered so the
  // names the server reads (quiz.questions[1].choices[2].text, and that
  // choice's .correct and .feedback) stay in order; a new choice starts with
  // its text and feedback empty.
  function replaceInText(root, pattern, n) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      node.nodeValue = node.nodeValue.replace(pattern, (_, word) => word + ' ' + n);
    }
  }

  function renameAll(root, fn) {
    root.querySelectorAll('[name], [id], [for], [aria-describedby], button[value]').forEach((el) => {
      ['name', 'id', 'for', 'aria-describedby'].forEach((a) => {
        if (el.hasAttribute(a)) el.setAttribute(a, fn(el.getAttribute(a), a));
      });
      if (el.tagName === 'BUTTON' && el.value) el.value = fn(el.value, 'value');
    });
    if (root.id) root.id = fn(root.id, 'id');
  }

  function renumber(questions) {
    questions.querySelectorAll(':scope > [data-question]').forEach((question, qi) => {
      renameAll(question, (v, a) => {
        if (a === 'name') return v.replace(/questions\[\d+\]/, 'questions[' + qi + ']');
        if (a === 'value') return v.replace(/^(remove_question|add_choice|remove_choice)-\d+/, '$1-' + qi);
        return v.replace(/-q\d+(?=-|$| )/g, '-q' + qi);
      });
      replaceInText(question, /\b([Qq]uestion) \d+/g, qi + 1);
      question.querySelectorAll('[data-choice]').forEach((choice, ci) => {
        renameAll(choice, (v, a) => {
          if (a === 'name') return v.replace(/choices\[\d+\]/, 'choices[' + ci + ']');
          if (a === 'value') return v.replace(/^remove_choice-(\d+)-\d+/, 'remove_choice-$1-' + ci);
          return v.replace(/-c\d+(?=-|$| )/g, '-c' + ci);
        });
        replaceInText(choice, /\b([Cc]hoice) \d+/g, ci + 1);
      });
      const addChoice = question.querySelector('[data-add-choice]');
      if (addChoice) addChoice.disabled = question.querySelectorAll('[data-choice]').length >= MAX_CHOICES;
    });
    const form = questions.closest('form');
    const addQuestion = form && form.querySelector('[data-add-question]');
    if (addQuestion) {
      addQuestion.disabled = questions.querySelectorAll(':scope > [data-question]').length >= MAX_QUESTIONS;
    }
  }

  // A copy of a question or choice with nothing typed and no problem shown.
  function blank(el) {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('.field-error').forEach((e) => e.remove());
    copy.querySelectorAll('.has-error').forEach((e) => e.classList.remove('has-error'));
    copy.classList.remove('has-error');
    copy.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
    copy.querySelectorAll('[aria-describedby]').forEach((e) => {
      const rest = e.getAttribute('aria-describedby').split(' ').filter((t) => !t.endsWith('-error'));
      if (rest.length) e.setAttribute('aria-describedby', rest.join(' '));
      else e.removeAttribute('aria-describedby');
    });
    copy.querySelectorAll('input[type="text"], input:not([type]), textarea').forEach((e) => { e.value = ''; });
    copy.querySelectorAll('input[type="checkbox"]').forEach((e) => { e.checked = false; });
    return copy;
  }

  document.addEventListener('click', (e) => {
    const button = e.target.closest && e.target.closest('button');
    if (!button) return;
    const questions = button.closest('form') && button.closest('form').querySelector('[data-questions]');
    if (button.matches('[data-add-question]') && questions) {
      const all = questions.querySelectorAll(':scope > [data-question]');
      if (!all.length || all.length >= MAX_QUESTIONS) return; // the server adds it
      const question = blank(all[all.length - 1]);
      const list = question.querySelector('[data-choices]');
      const choices = question.querySelectorAll('[data-choice]');
      if (!list || choices.length === 0) return; // no choice to copy: the server adds it
      e.preventDefault();
      const kind = question.querySelector('select[data-question-kind]');
      if (kind) kind.value = 'single';
      choices.forEach((c, i) => { if (i >= 2) c.remove(); });
      if (choices.length === 1) list.appendChild(blank(choices[0]));
      questions.appendChild(question);
      if (kind) showQuestionKind(kind);
      renumber(questions);
      const first = question.querySelector('textarea');
      if (first) first.focus();
    } else if (button.matches('[data-remove-question]') && questions) {
      e.preventDefault();
      const question = button.closest('[data-question]');
      question.remove();
      renumber(questions);
      const add = questions.closest('form').querySelector('[data-add-question]');
      if (add) add.focus();
    } else if (button.matches('[data-add-choice]') && questions) {
      const question = button.closest('[data-question]');
      const list = question.querySelector('[data-choices]');
      const all = list.querySelectorAll('[data-choice]');
      if (!all.length || all.length >= MAX_CHOICES) return;
      e.preventDefault();
      const choice = blank(all[all.length - 1]);
      list.appendChild(choice);
      renumber(questions);
      choice.querySelector('input[type="text"]').focus();
    } else if (button.matches('[data-remove-choice]') && questions) {
      e.preventDefault();
      const question = button.closest('[data-question]');
      button.closest('[data-choice]').remove();
      renumber(questions);
      question.querySelector('[data-add-choice]').focus();
    } else if (button.matches('[data-preview-button]')) {
      const fs = button.closest('fieldset');
      const textarea = fs && fs.querySelector('textarea[data-markdown]');
      if (!textarea) return;
      e.preventDefault();
      preview(textarea);
    }
  });

  // --- Markdown preview, rendered by the server's sanitising renderer.
  function preview(textarea) {
    const target = document.getElementById(textarea.dataset.preview);
    if (!target) return;
    const body = new URLSearchParams({ csrf_token: csrfToken(), markdown: textarea.value });
    fetch('/studio/preview', { method: 'POST', body, credentials: 'same-origin' })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        target.innerHTML = html; // sanitised on the server
        target.hidden = false;
      })
      .catch(() => { /* the Preview button still works without the script */ });
  }
  document.querySelectorAll('textarea[data-markdown]').forEach((textarea) => {
    let timer = null;
    textarea.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => preview(textarea), 400);
    });
  });

  // --- An image uploaded into the text, its Markdown where the cursor is.
  document.querySelectorAll('input[type="file"][data-image-upload]').forEach((input) => {
    input.addEventListener('change', () => {
      const file = input.files && input.files[0];
      const textarea = document.getElementById(input.dataset.into);
      const status = input.parentElement.querySelector('[data-upload-status]');
      if (!file || !textarea) return;
      const data = new FormData();
      data.append('csrf_token', csrfToken());
      data.append('image', file);
      if (status) status.textContent = 'Uploading ' + file.name + '…';
      fetch(input.dataset.imageUpload, { method: 'POST', body: data, credentials: 'same-origin' })
        .then((r) => r.json().then((json) => ({ ok: r.ok, json })))
        .then(({ ok, json }) => {
          if (!ok) throw new Error(json.error || 'The image could not be uploaded.');
          const at = textarea.selectionStart != null ? textarea.selectionEnd : textarea.value.length;
          const before = textarea.value.slice(0, at);
          const after = textarea.value.slice(at);
          const sep = before && !before.endsWith('\n') ? '\n\n' : '';
          textarea.value = before + sep + json.markdown + '\n' + after;
          textarea.dispatchEvent(new Event('input'));
          input.value = '';
          if (status) status.textContent = 'The image is in the text. Describe it between the brackets.';
        })
        .catch((err) => { if (status) status.textContent = err.message; });
    });
  });

  // --- Drag and drop: blocks of a unit, units of a section, sections of a
  // course. The Move up and Move down buttons remain for the keyboard.
  document.querySelectorAll('[data-reorder]').forEach((list) => {
    const items = () => Array.from(list.children).filter((c) => c.dataset.id);
    const status = list.parentElement.querySelector('[data-reorder-status]') ||
      document.querySelector('[data-reorder-status]');
    let dragged = null;
    let before = '';
    const order = () => items().map((i) => i.dataset.id).join(',');
    list.addEventListener('dragover', (e) => { if (dragged && dragged.parentElement === list) e.preventDefault(); });
    list.addEventListener('drop', (e) => { if (dragged && dragged.parentElement === list) e.preventDefault(); });
    items().forEach((item) => {
      const handle = document.createElement('span');
      handle.className = 'drag-handle';
      handle.draggable = true;
      handle.title = 'Drag to move';
      handle.setAttribute('aria-hidden', 'true');
      handle.textContent = '⠿';
      item.prepend(handle);
      handle.addEventListener('dragstart', (e) => {
        dragged = item;
        before = order();
        item.classList.add('is-dragged');
        e.dataTransfer.effectAllowed = 'move';
        e.dataTransfer.setData('text/plain', item.dataset.id);
        e.dataTransfer.setDragImage(item, 0, 0);
        e.stopPropagation();
      });
      handle.addEventListener('dragend', () => {
        item.classList.remove('is-dragged');
        dragged = null;
        if (order() !== before) save();
      });
      item.addEventListener('dragover', (e) => {
        if (!dragged || dragged === item || dragged.parentElement !== list) return;
        e.preventDefault();
        e.stopPropagation();
        const box = item.getBoundingClientRect();
        const next = e.clientY < box.top + box.height / 2 ? item : item.nextSibling;
        if (next !== dragged && next !== dragged.nextSibling) list.insertBefore(dragged, next);
      });
    });
    function save() {
      const body = new URLSearchParams({
        csrf_token: csrfToken(),
        order: order(),
        section: list.dataset.section || '0',
      });
      fetch(list.dataset.reorder, { method: 'POST', body, credentials: 'same-origin' })
        .then((r) => {
          if (!r.ok) throw new Error();
          if (status) status.textContent = 'The new order is saved.';
        })
        .catch(() => window.location.reload());
    }
  });
})();
