// lookalike storefront: upload or drop a photo, POST it to /v1/search as
// multipart/form-data, render the ranked results with their confidence
// bands, the inferred category, the fallback message and the facets.
// No framework, no third-party code; everything is built with DOM APIs
// (textContent, never innerHTML) so catalog text cannot inject markup.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const drop = $('drop'), fileInput = $('file'), preview = $('preview'), dropText = $('drop-text');
  const category = $('category'), inStock = $('in-stock'), kSel = $('k'), again = $('search');
  const status = $('status'), summary = $('summary'), inferred = $('inferred');
  const fallback = $('fallback'), facets = $('facets'), facetList = $('facet-list'), results = $('results');
  let photo = null;       // the File being searched
  let previewUrl = null;
  let lastSearchId = null;

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle('error', !!isError);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function choose(file) {
    if (!file) return;
    if (!/^image\/(jpeg|png)$/.test(file.type)) {
      setStatus('Please choose a JPEG or PNG photo.', true);
      return;
    }
    photo = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    dropText.hidden = true;
    again.disabled = false;
    search();
  }

  function queryString() {
    const p = new URLSearchParams();
    p.set('k', kSel.value);
    const c = category.value.trim();
    if (c) p.set('category', c);
    p.set('in_stock', inStock.checked ? 'true' : 'false');
    return p.toString();
  }

  async function search() {
    if (!photo) return;
    const form = new FormData();
    form.append('image', photo, photo.name || 'photo');
    setStatus('Searching…');
    again.disabled = true;
    try {
      const res = await fetch('/v1/search?' + queryString(), { method: 'POST', body: form });
      const body = await res.json().catch(() => null);
      if (!res.ok) {
        const msg = body && body.error ? body.error.message : ('HTTP ' + res.status);
        const hint = res.status === 413 ? ' (the photo is too large)' :
          res.status === 415 ? ' (only JPEG and PNG are supported)' :
          res.status === 429 ? ' (please wait a moment)' : '';
        setStatus('Search failed: ' + msg + hint, true);
        return;
      }
      render(body);
    } catch (e) {
      setStatus('Search failed: ' + e.message, true);
    } finally {
      again.disabled = !photo;
    }
  }

  function price(r) {
    return r.currency ? r.price + ' ' + r.currency : r.price;
  }

  function render(data) {
    lastSearchId = data.search_id;
    results.replaceChildren();
    const n = data.results.length;
    setStatus(n ? (n + ' result' + (n === 1 ? '' : 's') +
      (data.best_band ? ' · best match: ' + data.best_band : '') +
      ' · ' + Math.round(data.timings_ms.total) + ' ms') : 'No products found.');

    summary.hidden = false;
    if (data.inferred_category) {
      const ic = data.inferred_category;
      inferred.textContent = (ic.source === 'request' ? 'Category: ' : 'Looks like: ') + ic.category +
        (ic.source === 'request' ? '' : ' (' + Math.round(ic.confidence * 100) + '% confident)');
    } else {
      inferred.textContent = '';
    }

    const fb = data.fallback || {};
    fallback.hidden = !(fb.applied || fb.message);
    fallback.textContent = fb.message || (fb.applied ? 'No close match with these filters; showing nearby results.' : '');

    facetList.replaceChildren();
    (data.facets || []).forEach((f) => {
      const li = el('li');
      const b = el('button', null, f.category + ' (' + f.count + ')');
      b.type = 'button';
      b.addEventListener('click', () => { category.value = f.category; search(); });
      li.appendChild(b);
      facetList.appendChild(li);
    });
    facets.hidden = !(data.facets && data.facets.length);

    data.results.forEach((r) => {
      const li = el('li', 'card');
      li.dataset.sku = r.sku;
      const thumb = el('div', 'thumb');
      if (r.image_id) {
        const img = el('img');
        img.alt = r.title || r.sku;
        img.loading = 'lazy';
        img.src = '/v1/images/' + encodeURIComponent(r.image_id);
        img.addEventListener('error', () => { thumb.replaceChildren(el('span', null, r.sku)); });
        thumb.appendChild(img);
      } else {
        thumb.appendChild(el('span', null, r.sku));
      }
      const body = el('div', 'body');
      body.appendChild(el('span', 'band band-' + r.band, r.band));
      body.appendChild(el('span', 'title', r.title || r.sku));
      body.appendChild(el('span', 'meta', (r.category || '') + ' · ' + price(r)));
      body.appendChild(el('span', 'meta' + (r.in_stock ? '' : ' out'),
        r.in_stock ? 'In stock' : 'Out of stock'));
      li.appendChild(thumb);
      li.appendChild(body);
      li.addEventListener('click', () => report('view', r.sku));
      results.appendChild(li);
    });
  }

  // Tell the server what the shopper looked at after a visual search.
  function report(type, sku) {
    if (!lastSearchId) return;
    fetch('/v1/events', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ search_id: lastSearchId, sku: sku, type: type, ts: Math.floor(Date.now() / 1000) })
    }).catch(() => {});
  }

  fileInput.addEventListener('change', () => choose(fileInput.files[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') fileInput.click(); });
  $('filters').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  inStock.addEventListener('change', () => search());
  kSel.addEventListener('change', () => search());
})();
