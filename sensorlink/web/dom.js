// Small DOM and formatting helpers shared by the dashboard's panels.

/** el("div", {class: "x", title: "y"}, child, "text", ...) → HTMLElement */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function fmtC(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? "—" : `${v.toFixed(2)} °C`;
}

export function fmtRate(hz) {
  if (!Number.isFinite(hz)) return "—";
  if (hz >= 1000) return `${(hz / 1000).toFixed(1)} kHz`;
  if (hz >= 10) return `${hz.toFixed(0)} Hz`;
  return `${hz.toFixed(1)} Hz`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(s) {
  if (!Number.isFinite(s)) return "—";
  const m = Math.floor(s / 60), sec = s - m * 60;
  return `${m}:${sec.toFixed(1).padStart(4, "0")}`;
}

/** Angle in degrees wrapped to [0, 360). */
export function wrapDeg(a) {
  return ((a % 360) + 360) % 360;
}

// One redraw per animation frame however many updates arrive: returns a function that asks for
// `draw` to run at the next frame, once.
export function perFrame(draw) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
}
