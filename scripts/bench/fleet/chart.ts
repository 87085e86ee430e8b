/**
 * The chart of a fleet run: publishes/s and CONNECT attempts/s over time, one line per strategy,
 * time 0 at the restore, the fleet budget as a rule. Drawn with vega-lite (compiled to vega,
 * rendered headless to SVG), then rasterised to PNG with resvg.
 */
import { writeFileSync } from 'node:fs';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import type { PhaseInput } from './stats.js';

interface Point {
  strategy: string;
  t: number;
  rate: number;
  what: string;
}

export function chartData(phases: PhaseInput[], beforeS = 10): Point[] {
  const out: Point[] = [];
  for (const p of phases) {
    const r0 = Math.floor(p.restoreAt);
    const end = Math.max(p.series.publishes.length, p.series.connects.length);
    for (let s = Math.max(0, r0 - beforeS); s < end; s++) {
      out.push({ strategy: p.strategy, t: s - r0, rate: p.series.publishes[s] ?? 0, what: 'publishes/s' });
      out.push({ strategy: p.strategy, t: s - r0, rate: p.series.connects[s] ?? 0, what: 'CONNECT attempts/s' });
    }
  }
  return out;
}

export async function writeChart(phases: PhaseInput[], budget: number, title: string, svgFile: string, pngFile: string): Promise<void> {
  const data = chartData(phases);
  const panel = (what: string, withBudget: boolean) => ({
    width: 720,
    height: 220,
    title: what,
    layer: [
      {
        data: { values: data.filter((d) => d.what === what) },
        mark: { type: 'line', strokeWidth: 1.4 },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 's since the broker was restored' },
          y: { field: 'rate', type: 'quantitative', title: what },
          color: { field: 'strategy', type: 'nominal', sort: phases.map((p) => p.strategy) },
        },
      },
      ...(withBudget
        ? [{ data: { values: [{ budget }] }, mark: { type: 'rule', strokeDash: [6, 4], color: 'black' }, encoding: { y: { field: 'budget', type: 'quantitative' } } }]
        : []),
    ],
  });
  const spec = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, background: 'white', vconcat: [panel('publishes/s', true), panel('CONNECT attempts/s', false)] };
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(svgFile, svg);
  writeFileSync(pngFile, new Resvg(svg, { fitTo: { mode: 'zoom', value: 1.5 }, font: { loadSystemFonts: true } }).render().asPng());
}
