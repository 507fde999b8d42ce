// EXPECT: 3:32: error: unexpected 'zz'; expected ';'
// 'zz' is not a hex byte of a MAC address.
const VM1_MAC = 02:00:00:00:01:zz;

// The rest of the file is valid.
const UPLINK0 = 0;
