// A scrolling waterfall on a plain canvas: one row per sweep of the job's whole band, newest on
// top. Frames (hops) are written into the current row as they arrive; a frame that starts a new
// sweep (its centre at or below the previous one's) scrolls the canvas by one row. Drawing is
// batched to one update per animation frame, so frames arriving faster than the screen
// refreshes cost a copy into the row, not a redraw.

/** 256 RGBA colours from dark blue through green to yellow (a viridis-like ramp). */
function ramp() {
  const stops = [[13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104],
    [244, 136, 73], [254, 188, 43], [240, 249, 33]];
  const out = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (stops.length - 1);
    const k = Math.min(stops.length - 2, Math.floor(x));
    const t = x - k;
    for (let c = 0; c < 3; c++) out[i * 4 + c] = stops[k][c] + (stops[k + 1][c] - stops[k][c]) * t;
    out[i * 4 + 3] = 255;
  }
  return out;
}
const COLOURS = ramp();

export class Waterfall {
  /** `canvas`: the element; the band [startHz, stopHz) in `columns` columns; `rows` pixels of
   *  history, `rowPx` of them a sweep (a short scan's few sweeps fill the canvas). */
  constructor(canvas, startHz, stopHz, columns, rows = 300, rowPx = 1) {
    this.rowPx = Math.max(1, Math.min(rows, Math.round(rowPx)));
    this.canvas = canvas;
    this.startHz = startHz;
    this.stopHz = stopHz;
    this.columns = Math.max(1, Math.min(8192, Math.round(columns)));
    canvas.width = this.columns;
    canvas.height = rows;
    this.ctx = canvas.getContext("2d", { willReadFrequently: false });
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, canvas.width, canvas.height);
    this.row = new Float32Array(this.columns).fill(NaN);
    this.line = this.ctx.createImageData(this.columns, 1);
    this.lastCenter = -Infinity;
    this.lo = null; this.hi = null;
    this.pendingScroll = 0;
    this.dirty = false;
    this.scheduled = false;
    this.rowsDrawn = 0;    // animation frames that drew (for the benchmark)
    this.framesIn = 0;     // frames taken
    this.sweeps = [];      // finished sweeps: {time, row}
    this.keepSweeps = 0;   // how many to keep (the time slider of a finished scan)
    this.onSweep = null;
  }

  column(freqHz) {
    return Math.floor(((freqHz - this.startHz) / (this.stopHz - this.startHz)) * this.columns);
  }

  /** One PSD frame: {center_freq_hz, bin_hz, psd_db: [...], time_unix_s}. */
  add(frame) {
    this.framesIn++;
    const n = frame.psd_db.length;
    if (frame.center_freq_hz <= this.lastCenter) this.endSweep(frame.time_unix_s);
    this.lastCenter = frame.center_freq_hz;
    this.rowTime = frame.time_unix_s;
    const f0 = frame.center_freq_hz - (n / 2) * frame.bin_hz;
    // each column gets the highest bin that falls in it (peaks survive decimation)
    const touched = new Map();
    for (let i = 0; i < n; i++) {
      const v = frame.psd_db[i];
      if (v === null || v === undefined) continue;
      const c = this.column(f0 + (i + 0.5) * frame.bin_hz);
      if (c < 0 || c >= this.columns) continue;
      const prev = touched.get(c);
      if (prev === undefined || v > prev) touched.set(c, v);
    }
    for (const [c, v] of touched) {
      this.row[c] = v;
      if (this.lo === null || v < this.lo) this.lo = v;
      if (this.hi === null || v > this.hi) this.hi = v;
    }
    this.schedule();
  }

  endSweep(time) {
    if (this.keepSweeps) {
      this.sweeps.push({ time: this.rowTime ?? time, row: this.row.slice() });
      if (this.sweeps.length > this.keepSweeps) this.sweeps.shift();
    }
    if (this.onSweep) this.onSweep(this.row);
    this.pendingScroll++;
    this.drawRow(); // the finished row stays where it is; a fresh one starts on top
    this.row = new Float32Array(this.columns).fill(NaN);
  }

  schedule() {
    this.dirty = true;
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.draw(); });
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const { ctx, canvas } = this;
    if (this.pendingScroll) {
      const k = Math.min(this.pendingScroll * this.rowPx, canvas.height);
      ctx.drawImage(canvas, 0, 0, canvas.width, canvas.height - k, 0, k, canvas.width, canvas.height - k);
      this.pendingScroll = 0;
    }
    this.drawRow();
    this.rowsDrawn++;
  }

  drawRow() {
    const span = Math.max(1, (this.hi ?? 0) - (this.lo ?? 0));
    const px = this.line.data;
    for (let c = 0; c < this.columns; c++) {
      const v = this.row[c];
      const o = c * 4;
      if (Number.isNaN(v)) { px[o] = px[o + 1] = px[o + 2] = 0; px[o + 3] = 255; continue; }
      const k = Math.max(0, Math.min(255, Math.round(((v - this.lo) / span) * 255))) * 4;
      px[o] = COLOURS[k]; px[o + 1] = COLOURS[k + 1]; px[o + 2] = COLOURS[k + 2]; px[o + 3] = 255;
    }
    this.ctx.putImageData(this.line, 0, 0);
    if (this.rowPx > 1) {
      this.ctx.drawImage(this.canvas, 0, 0, this.columns, 1, 0, 1, this.columns, this.rowPx - 1);
    }
  }

  /** Non-background pixels on the canvas (for the tests). */
  litPixels() {
    const d = this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) lit++;
    return lit;
  }
}
