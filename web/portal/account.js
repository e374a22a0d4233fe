// account.js - the confirm-email and reset-password pages. The token comes in the link's
// fragment (#token=...), which the browser never sends to a server; it is posted once.
import { api } from './api.js';
import { loadBrand } from './brand.js';

loadBrand(api).catch(() => {}); // the pages work unbranded if the plans cannot be read

// Read when the form is sent, not when the page loads: opening a second link in the same tab
// changes only the fragment, which does not load the page again.
const linkToken = () => new URLSearchParams(location.hash.slice(1)).get('token') || '';
const msg = document.getElementById('msg');
const say = (text) => { msg.textContent = text; };

const confirm = document.getElementById('confirm');
if (confirm) {
  confirm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('POST', '/v1/confirm-email', { token: linkToken() });
      say(`${r.email} is confirmed. Your API keys work now.`);
      confirm.hidden = true;
    } catch (err) {
      say(err.message);
      // an old or expired link: the account page mails a new one (POST /v1/me/confirmation)
      if (err.data?.error?.type === 'invalid_token') {
        const a = document.createElement('a');
        a.href = '/portal/app.html#notifications';
        a.textContent = 'Sign in and ask for a new link';
        msg.append(' ', a, '.');
      }
    }
  });
}

const reset = document.getElementById('reset');
if (reset) {
  if (!linkToken()) reset.hidden = true;
  reset.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/v1/reset-password', { token: linkToken(), password: reset.password.value });
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

// Another link opened in this tab: its form again, and no answer of the previous one.
window.addEventListener('hashchange', () => {
  say('');
  if (confirm) confirm.hidden = false;
  if (reset) reset.hidden = !linkToken();
});
