// EXPECT: 4:7: error: unexpected character '$'
// '$' is not part of the language.
const VNI = 5001;
const $PORT = 2;

// The rest of the file is valid.
const UPLINK0 = 0;
