// The page chrome shared by tickerd's own pages (the automatic page at /auto,
// the dashboards at /d/NAME): the connection indicator and the theme switch.

/**
 * Shows `client`'s connection state in `box` (`.text` inside it) with a
 * countdown while reconnecting and a `retry` button; mirrors the state on
 * `document.body.dataset.conn`.
 */
export function bindConnection(client, box, retry) {
  let countdown = 0;
  const text = box.querySelector('.text');
  const show = (detail) => {
    box.dataset.state = detail.state;
    document.body.dataset.conn = detail.state;
    clearInterval(countdown);
    retry.hidden = true;
    box.title = detail.error ?? '';
    switch (detail.state) {
      case 'live':
        text.textContent = 'Live';
        break;
      case 'connecting':
        text.textContent = client.epoch ? 'Reconnecting…' : 'Connecting…';
        break;
      case 'reconnecting': {
        retry.hidden = false;
        const tick = () => {
          const s = Math.max(0, Math.ceil((detail.retryAt - Date.now()) / 1000));
          text.textContent = `Reconnecting in ${s}s`;
        };
        tick();
        countdown = setInterval(tick, 250);
        break;
      }
      default:
        text.textContent = 'Offline';
        retry.hidden = false;
    }
  };
  client.addEventListener('state', (e) => show(e.detail));
  show({ state: client.state === 'offline' ? 'connecting' : client.state });
  retry.addEventListener('click', () => client.retryNow());
}

const THEMES = ['auto', 'light', 'dark'];

/** Theme: auto (the system's) -> light -> dark, kept in localStorage. */
export function bindTheme(button) {
  const set = (t) => {
    if (t === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = t;
    try {
      if (t === 'auto') localStorage.removeItem('tickerd-theme');
      else localStorage.setItem('tickerd-theme', t);
    } catch { /* private mode */ }
    button.title = `Theme: ${t}`;
  };
  button.addEventListener('click', () => {
    const cur = document.documentElement.dataset.theme ?? 'auto';
    set(THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length]);
  });
  button.title = `Theme: ${document.documentElement.dataset.theme ?? 'auto'}`;
}
