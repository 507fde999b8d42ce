// EXPECT: 6:29: error: undefined name 'UPLINK1'
// forward() names a constant that was never declared.
const UPLINK0 = 0;

nf out {
    action send() { forward(UPLINK1); }
    apply { send(); }
}
