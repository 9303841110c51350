// Recency without writes: a 2-bit access counter per slot of a shared array.
//
// Each slot is one byte: a 6-bit tag of the key that owns it and a 2-bit
// counter. The slot of a key is picked by its key_hash (already uniform:
// SHA-256), the tag from other bits of the same hash. A read that finds an
// entry raises its counter (to 3 at most) with one compare-and-swap on the
// 32-bit word holding four slots; a read of a hot key whose counter is
// already 3 writes nothing. The evictor's hand lowers the counter of each
// entry it passes and evicts those at 0: CLOCK with two bits (a key read at
// least once since the hand last passed gets one more revolution, a key
// read often gets up to three). Without the tag, a new key sharing its slot
// with a hot key would look hot too; with it, a collision makes the victim
// look cold instead, and a slot is taken over only when its counter is 0.
//
// Nothing here locks or writes the table; a lost race (two CAS at once) only
// loses one count. bench/eviction/DESIGN.md has the measurements behind the
// sizes (8 slots per entry of the limit, tags, 2 bits).

#include "eviction/shared.hpp"

#include <cstring>

#include "guc.hpp"

namespace fastpgcache {
namespace eviction {
namespace {

struct SlotRef {
  pg_atomic_uint32 *word;
  int shift;    // bit offset of the slot's byte in the word
  uint32 tag;   // 1..63 (0 would look like an empty slot)
};

SlotRef SlotOf(const uint8_t *hash) {
  uint64 h;
  std::memcpy(&h, hash, sizeof h);
  uint64 index = static_cast<uint64>((static_cast<unsigned __int128>(h) * g_state->nslots) >> 64);
  SlotRef ref;
  ref.word = &g_state->counters[index / 4];
  ref.shift = static_cast<int>(index % 4) * 8;
  ref.tag = (hash[8] & 0x3fu) | ((hash[8] & 0x3fu) == 0 ? 1u : 0u);
  return ref;
}

inline uint32 ByteOf(uint32 word, int shift) { return (word >> shift) & 0xffu; }
inline uint32 WithByte(uint32 word, int shift, uint32 byte) {
  return (word & ~(0xffu << shift)) | (byte << shift);
}

}  // namespace

bool Tracking() noexcept { return g_state != nullptr && g_state->nslots > 0; }

void Touch(const uint8_t *key_hash) noexcept {
  if (!Tracking()) return;
  SlotRef s = SlotOf(key_hash);
  uint32 old = pg_atomic_read_u32(s.word);
  uint32 byte = ByteOf(old, s.shift);
  uint32 tag = byte >> 2, counter = byte & 3u;
  uint32 next;
  if (tag == s.tag) {
    if (counter == 3) return;  // hot already: nothing to write
    next = (tag << 2) | (counter + 1);
  } else if (counter == 0) {
    next = (s.tag << 2) | 1u;  // a cold slot: take it
  } else {
    return;  // another key owns it and is warm
  }
  (void)pg_atomic_compare_exchange_u32(s.word, &old, WithByte(old, s.shift, next));
}

void NoteInsert(const uint8_t *key_hash) noexcept {
  if (!Tracking()) return;
  SlotRef s = SlotOf(key_hash);
  uint32 old = pg_atomic_read_u32(s.word);
  uint32 byte = ByteOf(old, s.shift);
  if ((byte & 3u) != 0 || (byte >> 2) == s.tag) return;  // warm, or ours already
  (void)pg_atomic_compare_exchange_u32(s.word, &old, WithByte(old, s.shift, s.tag << 2));
}

bool TakeSecondChance(const uint8_t *key_hash) noexcept {
  if (!Tracking()) return false;
  SlotRef s = SlotOf(key_hash);
  for (int attempt = 0; attempt < 4; attempt++) {
    uint32 old = pg_atomic_read_u32(s.word);
    uint32 byte = ByteOf(old, s.shift);
    uint32 tag = byte >> 2, counter = byte & 3u;
    if (tag != s.tag || counter == 0) return false;  // cold, or the slot is another key's
    if (pg_atomic_compare_exchange_u32(s.word, &old, WithByte(old, s.shift, (tag << 2) | (counter - 1))))
      return true;
  }
  return true;  // contended: it is being read right now
}

}  // namespace eviction
}  // namespace fastpgcache
