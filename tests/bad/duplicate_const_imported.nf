// EXPECT: 5:7: error: constant 'UPLINK' is already defined
// A constant repeats one declared in an imported file.
import "lib/shared_consts.nf";

const UPLINK = 0;
const GATEWAY_MAC = 02:00:00:00:00:fe;
