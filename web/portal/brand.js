// brand.js - the portal's branding (portal.title, logo, primary_color, support_email, terms_url,
// privacy_url; GET /v1/plans's "portal"): the site's name in the title and the header, its logo,
// its colour as the --accent custom property (set through the CSSOM: the CSP allows no inline
// style), and a footer with the support address and the terms and privacy links.
import { el } from './api.js';

export function applyBrand(portal) {
  if (!portal) return;
  if (portal.primary_color) document.documentElement.style.setProperty('--accent', portal.primary_color);
  if (portal.title && !document.title.endsWith(portal.title)) document.title = `${document.title} — ${portal.title}`;
  const header = document.querySelector('header');
  if (header && (portal.title || portal.logo) && !header.querySelector('.brand')) {
    header.prepend(el('a', { class: 'brand', href: '/portal/', 'data-testid': 'brand' },
      portal.logo ? el('img', { src: portal.logo, alt: portal.title ? `${portal.title} logo` : 'Logo', height: '32' }) : '',
      portal.title ? el('span', {}, portal.title) : ''));
  }
  const links = [];
  if (portal.support_email) links.push(el('a', { href: `mailto:${portal.support_email}` }, `Support: ${portal.support_email}`));
  if (portal.terms_url) links.push(el('a', { href: portal.terms_url, rel: 'noopener' }, 'Terms of service'));
  if (portal.privacy_url) links.push(el('a', { href: portal.privacy_url, rel: 'noopener' }, 'Privacy policy'));
  if (links.length && !document.querySelector('footer.brand-footer'))
    document.body.append(el('footer', { class: 'brand-footer', 'data-testid': 'brand-footer' }, links));
}

// For pages that do not load the plans themselves.
export async function loadBrand(api) {
  const r = await api('GET', '/v1/plans');
  applyBrand(r.portal);
  return r;
}
