// Helper for import_cycle_a.nf: imports it back, closing the cycle.
import "../import_cycle_a.nf";

const CYCLE_B = 2;
