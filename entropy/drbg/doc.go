// Package drbg implements CTR_DRBG of NIST SP 800-90A Rev. 1 (June 2015), §10.2,
// with AES-256 as the block cipher and the derivation function (Block_Cipher_df,
// §10.3.2), using only the standard library (crypto/aes, crypto/cipher).
//
// # Parameters (SP 800-90A Rev. 1, §10.2.1, Table 3)
//
//   - Block cipher AES-256: keylen = 256 bits, blocklen = outlen = 128 bits,
//     seedlen = keylen + blocklen = 384 bits, security strength 256 bits.
//   - ctr_len = blocklen: V is incremented as a 128-bit big-endian counter over the
//     whole block (§10.2.1, "ctr_len"; the increment of §10.2.1.2 step 2.1 and
//     §10.2.1.5.2 step 4.1 with ctr_len = blocklen reduces to V = (V+1) mod 2^128).
//   - Entropy input: at least 256 bits (32 bytes) at instantiation and at every
//     reseed; nonce: at least 128 bits (16 bytes) (§8.6.7: half the security
//     strength).
//   - Table 3 allows up to 2^35 bits for entropy input, personalization string and
//     additional input. This package bounds every input to [MaxInputLen] bytes
//     (64 KiB) — entropy input, nonce, personalization string and additional input
//     each — which keeps Block_Cipher_df's 32-bit length field far from overflow.
//   - max_number_of_bits_per_request = 2^19 bits: [MaxRequest] = 65536 bytes per
//     Generate call ([ErrRequestTooLarge] above that). [CTR.Read] splits longer
//     reads into such calls.
//   - reseed_interval = 2^48 generate requests ([ReseedInterval]); a smaller one can
//     be set through [Options]. Generate returns [ErrReseedRequired] once the reseed
//     counter exceeds the interval (§10.2.1.5.2 step 1).
//
// # Construction
//
//   - CTR_DRBG_Update (§10.2.1.2): encrypt V+1, V+2, V+3 under Key, XOR the 384
//     bits with provided_data, split into the new Key (256 bits) and V (128 bits).
//   - Instantiate with df (§10.2.1.3.2): seed_material = Block_Cipher_df(
//     entropy_input || nonce || personalization_string, 384); Key = 0, V = 0;
//     Update(seed_material); reseed_counter = 1.
//   - Reseed with df (§10.2.1.4.2): seed_material = Block_Cipher_df(entropy_input ||
//     additional_input, 384); Update(seed_material); reseed_counter = 1.
//   - Generate with df (§10.2.1.5.2): if additional_input is not Null (an empty
//     slice counts as Null), additional_input = Block_Cipher_df(additional_input,
//     384) and Update(additional_input), else additional_input = 0^384; then the
//     keystream E(Key, V+1) || E(Key, V+2) || … truncated to the request; V advances
//     by the number of blocks produced; Update(additional_input);
//     reseed_counter += 1.
//   - Block_Cipher_df (§10.3.2) with BCC (§10.3.3): S = L || N || input || 0x80 ||
//     0-padding to a block; K = 0x00010203…1F; three BCC chains over IV_i || S
//     (IV_i = i as 32 bits, zero-padded to a block) give K' || X; X is encrypted
//     three times under K' for the 384 output bits.
//
// The bulk keystream of Generate is AES-256-CTR from crypto/cipher's NewCTR started
// at V+1; its 128-bit big-endian counter increment is exactly the ctr_len = blocklen
// increment above, including the wrap at 2^128. Requests of at most 128 bytes use
// single-block encryptions instead, which avoids setting up a stream.
//
// # Prediction resistance
//
// The DRBG holds no entropy source. Prediction resistance (§9.3.1 step 7) is the
// caller's job: reseed with fresh entropy immediately before generating, i.e.
// Reseed(entropy, additional) and then Generate(out, nil). [CTR.GeneratePR] does the
// two steps under one lock so no other request can slip in between. The NIST CAVP
// "PredictionResistance = True" vectors are run both ways in the package tests.
//
// # Secrets and allocation
//
// Key, V and all intermediate seed material live in the [CTR] value and are wiped
// by [CTR.Close] and after use. The expanded AES key schedules are held by
// crypto/aes values that Go code cannot wipe; Close drops the reference so the
// garbage collector reclaims it. Because crypto/aes.NewCipher and
// crypto/cipher.NewCTR allocate on the heap (neither can be inlined in Go 1.26),
// and the key changes on every Generate as the standard requires, a Generate call
// costs one allocation for the new key schedule plus one for the stream when the
// request exceeds 128 bytes; additional input adds two (the df key K' and the key
// produced by the extra Update of §10.2.1.5.2 step 2.2). Nothing else allocates.
//
// A *CTR is safe for concurrent use; calls are serialized by a mutex.
package drbg
