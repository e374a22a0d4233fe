// account.js - the confirm-email and reset-password pages. The token comes in the link's
// fragment (#token=...), which the browser never sends to a server; it is posted once.
import { api } from './api.js';

const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
const msg = document.getElementById('msg');
const say = (text) => { msg.textContent = text; };

const confirm = document.getElementById('confirm');
if (confirm) {
  confirm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('POST', '/v1/confirm-email', { token });
      say(`${r.email} is confirmed. Your API keys work now.`);
      confirm.hidden = true;
    } catch (err) { say(err.message); }
  });
}

const reset = document.getElementById('reset');
if (reset) {
  if (!token) reset.hidden = true;
  reset.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/v1/reset-password', { token, password: reset.password.value });
      say('Your password is changed and every session is signed out. Sign in with the new password.');
      reset.hidden = true;
    } catch (err) { say(err.message); }
  });
}

const forgot = document.getElementById('forgot');
if (forgot) {
  forgot.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('POST', '/v1/forgot-password', { email: forgot.email.value });
      say(r.message);
    } catch (err) { say(err.message); }
  });
}
