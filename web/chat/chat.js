// The guard's chat page. Talks only to its own origin (/api/tags, /api/chat);
// the conversation lives in this page's memory and is gone when it closes.
// Model output is only ever put into the page as text (textContent), never as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const log = $('log');
  const model = $('model');
  const prompt = $('prompt');
  const send = $('send');
  const stop = $('stop');
  const status = $('status');
  /** The conversation sent with every request: [{role, content}]. */
  let messages = [];
  /** The AbortController of the answer streaming now, or null. */
  let running = null;
  /** Bumped by New chat, so an answer stopped by it does not land in the next conversation. */
  let conversation = 0;

  function bubble(kind, text) {
    const div = document.createElement('div');
    div.className = 'msg ' + kind;
    div.textContent = text;
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function note(div, text) {
    const span = document.createElement('span');
    span.className = 'note';
    span.textContent = text;
    div.appendChild(span);
  }

  function setBusy(busy) {
    send.disabled = busy || model.value === '';
    stop.disabled = !busy;
    model.disabled = busy || model.options.length === 0 || model.value === '';
  }

  /** The guard's answer to a refused request is JSON {"error": "..."}; anything else is shown by its status. */
  async function errorText(res) {
    try {
      const body = await res.json();
      if (body && typeof body.error === 'string') return body.error + ' (' + res.status + ')';
    } catch (e) { /* not JSON */ }
    return 'HTTP ' + res.status;
  }

  async function loadModels() {
    status.textContent = 'Loading models…';
    try {
      const res = await fetch('/api/tags', { headers: { accept: 'application/json' }, cache: 'no-store' });
      if (!res.ok) throw new Error(await errorText(res));
      const body = await res.json();
      const names = (Array.isArray(body.models) ? body.models : []).map((m) => String(m.name ?? m.model ?? '')).filter(Boolean);
      model.replaceChildren();
      for (const n of names) {
        const opt = document.createElement('option');
        opt.value = n;
        opt.textContent = n;
        model.appendChild(opt);
      }
      if (names.length === 0) {
        const opt = document.createElement('option');
        opt.value = '';
        opt.textContent = 'no models available';
        model.appendChild(opt);
      }
      status.textContent = names.length ? '' : 'Your policy allows no installed model.';
    } catch (e) {
      model.replaceChildren(new Option('no models', ''));
      status.textContent = 'Cannot list models: ' + e.message;
    }
    setBusy(false);
  }

  async function ask(text) {
    messages.push({ role: 'user', content: text });
    bubble('user', text);
    const out = bubble('assistant', '');
    out.classList.add('streaming');
    const controller = new AbortController();
    const conv = conversation;
    running = controller;
    setBusy(true);
    status.textContent = model.value + ' is answering…';
    let answer = '';
    let ended = 'stopped';
    try {
      const res = await fetch('/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify({ model: model.value, messages: messages, stream: true }),
        signal: controller.signal,
        cache: 'no-store',
      });
      if (!res.ok) throw new Error(await errorText(res));
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          const chunk = JSON.parse(line);
          if (chunk.error) throw new Error(String(chunk.error));
          if (chunk.message && typeof chunk.message.content === 'string') {
            answer += chunk.message.content;
            out.textContent = answer;
            log.scrollTop = log.scrollHeight;
          }
          if (chunk.done) ended = 'done';
        }
      }
      if (ended !== 'done') throw new Error('the answer ended early');
    } catch (e) {
      if (controller.signal.aborted) {
        note(out, 'stopped');
      } else {
        ended = 'error';
        if (answer === '') out.remove();
        bubble('error', e.message);
      }
    } finally {
      out.classList.remove('streaming');
      out.dataset.state = ended;
      // A stopped answer stays in the conversation as far as it got; a failed request leaves nothing behind.
      if (conv === conversation) {
        if (answer !== '') messages.push({ role: 'assistant', content: answer });
        else if (ended === 'error') messages.pop();
      }
      if (running === controller) {
        running = null;
        status.textContent = '';
        setBusy(false);
      }
    }
  }

  $('ask').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text || running || model.value === '') return;
    prompt.value = '';
    void ask(text);
  });
  prompt.addEventListener('keydown', (ev) => {
    // Enter sends on a keyboard with Shift for a new line; phones keep Enter for new lines and use the button.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && window.matchMedia('(pointer: fine)').matches) {
      ev.preventDefault();
      $('ask').requestSubmit();
    }
  });
  stop.addEventListener('click', () => running && running.abort());
  $('new').addEventListener('click', () => {
    if (running) running.abort();
    running = null;
    conversation++;
    messages = [];
    log.replaceChildren();
    status.textContent = '';
    setBusy(false);
    prompt.focus();
  });
  model.addEventListener('change', () => setBusy(Boolean(running)));

  void loadModels();
})();
