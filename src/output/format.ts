// Fractions as percentages for people, as the report, the tables, the notes, the charts' titles
// and the progress lines print them. What a non-finite number shows is the caller's choice (the
// report prints "—" for it): these print what JavaScript does.

/** A fraction as a percentage with `d` decimals: 0.88125 → 88.13%. */
export const pct = (x: number, d = 2): string => `${(x * 100).toFixed(d)}%`

/** A relative difference as a percentage, readable at any size: 0.12%, 1.6e-7%; NaN as "NaN". */
export const relPct = (x: number): string => (!Number.isFinite(x) ? String(x) : x === 0 ? '0%' : x >= 1e-4 ? `${(x * 100).toPrecision(2)}%` : `${(x * 100).toExponential(1)}%`)
