/*
 * commands.cpp
 *
 * The command table and argument parsing declared in commands.hpp. Flags,
 * arity, key positions, categories, tips and key specs were transcribed from
 * redis-server 7.0's COMMAND INFO and are compared with it by
 * test/resp/diff_commands.py; the argument checks follow Redis 7.0's command
 * implementations (t_string.c, expire.c, db.c) in the order Redis applies them,
 * so that the same malformed command gets the same error.
 */
#include "commands.hpp"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace fastpgcache::resp {

namespace {

constexpr uint32_t kRW = kFlagWrite | kFlagDenyOom;
constexpr uint32_t kConnFlags = kFlagNoScript | kFlagLoading | kFlagStale | kFlagFast | kFlagNoAuth | kFlagAllowBusy;
constexpr uint32_t kClientFlags = kFlagNoScript | kFlagLoading | kFlagStale;
constexpr uint32_t kX = kFlagExecutor;

#define KEY1 1, 1, 1
#define NOKEY 0, 0, 0
#define NOSUB nullptr, 0

const CommandSpec kClientSubcommands[] = {
    {"client|id", CommandId::kClientId, 2, kClientFlags, NOKEY, "@slow @connection", "", nullptr, nullptr,
     "Returns the unique client ID of the connection.", "5.0.0", "connection", "O(1)", NOSUB},
    {"client|getname", CommandId::kClientGetName, 2, kClientFlags, NOKEY, "@slow @connection", "", nullptr, nullptr,
     "Returns the name of the connection.", "2.6.9", "connection", "O(1)", NOSUB},
    {"client|setname", CommandId::kClientSetName, 3, kClientFlags, NOKEY, "@slow @connection", "", nullptr, nullptr,
     "Sets the connection name.", "2.6.9", "connection", "O(1)", NOSUB},
    {"client|info", CommandId::kClientInfo, 2, kClientFlags, NOKEY, "@slow @connection", "nondeterministic_output",
     nullptr, nullptr, "Returns information about the connection.", "6.2.0", "connection", "O(1)", NOSUB},
    {"client|list", CommandId::kClientList, -2, kFlagAdmin | kClientFlags, NOKEY,
     "@admin @slow @dangerous @connection", "nondeterministic_output", nullptr, nullptr,
     "Lists open connections.", "2.4.0", "connection", "O(N) where N is the number of client connections", NOSUB},
    {"client|setinfo", CommandId::kClientSetInfo, 4, kClientFlags, NOKEY, "@slow @connection", "", nullptr, nullptr,
     "Sets information specific to the client or connection.", "7.2.0", "connection", "O(1)", NOSUB},
};

const CommandSpec kCommandSubcommands[] = {
    {"command|count", CommandId::kCommandCount, 2, kFlagLoading | kFlagStale, NOKEY, "@slow @connection", "",
     nullptr, nullptr, "Returns a count of commands.", "2.8.13", "server", "O(1)", NOSUB},
    {"command|docs", CommandId::kCommandDocs, -2, kFlagLoading | kFlagStale, NOKEY, "@slow @connection",
     "nondeterministic_output_order", nullptr, nullptr, "Returns documentary information about one, multiple or all commands.",
     "7.0.0", "server", "O(N) where N is the number of commands to look up", NOSUB},
    {"command|info", CommandId::kCommandInfo, -2, kFlagLoading | kFlagStale, NOKEY, "@slow @connection",
     "nondeterministic_output_order", nullptr, nullptr, "Returns information about one, multiple or all commands.",
     "2.8.13", "server", "O(N) where N is the number of commands to look up", NOSUB},
    {"command|list", CommandId::kCommandList, -2, kFlagLoading | kFlagStale, NOKEY, "@slow @connection",
     "nondeterministic_output_order", nullptr, nullptr, "Returns a list of command names.", "7.0.0", "server",
     "O(N) where N is the total number of commands", NOSUB},
};

const CommandSpec kConfigSubcommands[] = {
    {"config|get", CommandId::kConfigGet, -3, kFlagAdmin | kFlagNoScript | kFlagLoading | kFlagStale, NOKEY,
     "@admin @slow @dangerous", "", nullptr, nullptr, "Returns the effective values of configuration parameters.",
     "2.0.0", "server", "O(N) when N is the number of configuration parameters provided", NOSUB},
};

const CommandSpec kCommands[] = {
    {"get", CommandId::kGet, 2, kX | kFlagReadOnly | kFlagFast, KEY1, "@read @string @fast", "", "RO access", nullptr,
     "Returns the string value of a key.", "1.0.0", "string", "O(1)", NOSUB},
    {"set", CommandId::kSet, -3, kX | kRW, KEY1, "@write @string @slow", "", "RW access update variable_flags",
     "RW and ACCESS due to the optional `GET` argument",
     "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", "1.0.0",
     "string", "O(1)", NOSUB},
    {"setnx", CommandId::kSetNx, 3, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "OW insert", nullptr,
     "Set the string value of a key only when the key doesn't exist.", "1.0.0", "string", "O(1)", NOSUB},
    {"setex", CommandId::kSetEx, 4, kX | kRW, KEY1, "@write @string @slow", "", "OW update", nullptr,
     "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", "2.0.0",
     "string", "O(1)", NOSUB},
    {"psetex", CommandId::kPSetEx, 4, kX | kRW, KEY1, "@write @string @slow", "", "OW update", nullptr,
     "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
     "2.6.0", "string", "O(1)", NOSUB},
    {"mget", CommandId::kMGet, -2, kX | kFlagReadOnly | kFlagFast, 1, -1, 1, "@read @string @fast",
     "request_policy:multi_shard", "RO access", nullptr, "Atomically returns the string values of one or more keys.",
     "1.0.0", "string", "O(N) where N is the number of keys to retrieve.", NOSUB},
    {"mset", CommandId::kMSet, -3, kX | kRW, 1, -1, 2, "@write @string @slow",
     "request_policy:multi_shard response_policy:all_succeeded", "OW update", nullptr,
     "Atomically creates or modifies the string values of one or more keys.", "1.0.1", "string",
     "O(N) where N is the number of keys to set.", NOSUB},
    {"msetnx", CommandId::kMSetNx, -3, kX | kRW, 1, -1, 2, "@write @string @slow",
     "request_policy:multi_shard response_policy:agg_min", "OW insert", nullptr,
     "Atomically modifies the string values of one or more keys only when all keys don't exist.", "1.0.1",
     "string", "O(N) where N is the number of keys to set.", NOSUB},
    {"del", CommandId::kDel, -2, kX | kFlagWrite, 1, -1, 1, "@keyspace @write @slow",
     "request_policy:multi_shard response_policy:agg_sum", "RM delete", nullptr, "Deletes one or more keys.", "1.0.0",
     "generic", "O(N) where N is the number of keys that will be removed.", NOSUB},
    {"unlink", CommandId::kUnlink, -2, kX | kFlagWrite | kFlagFast, 1, -1, 1, "@keyspace @write @fast",
     "request_policy:multi_shard response_policy:agg_sum", "RM delete", nullptr,
     "Asynchronously deletes one or more keys.", "4.0.0", "generic", "O(1) for each key removed.", NOSUB},
    {"exists", CommandId::kExists, -2, kX | kFlagReadOnly | kFlagFast, 1, -1, 1, "@keyspace @read @fast",
     "request_policy:multi_shard response_policy:agg_sum", "RO", nullptr, "Determines whether one or more keys exist.",
     "1.0.0", "generic", "O(N) where N is the number of keys to check.", NOSUB},
    {"ttl", CommandId::kTtl, 2, kX | kFlagReadOnly | kFlagFast, KEY1, "@keyspace @read @fast",
     "nondeterministic_output", "RO access", nullptr, "Returns the expiration time in seconds of a key.", "1.0.0",
     "generic", "O(1)", NOSUB},
    {"pttl", CommandId::kPTtl, 2, kX | kFlagReadOnly | kFlagFast, KEY1, "@keyspace @read @fast",
     "nondeterministic_output", "RO access", nullptr, "Returns the expiration time in milliseconds of a key.",
     "2.6.0", "generic", "O(1)", NOSUB},
    {"expire", CommandId::kExpire, -3, kX | kFlagWrite | kFlagFast, KEY1, "@keyspace @write @fast", "", "RW update",
     nullptr, "Sets the expiration time of a key in seconds.", "1.0.0", "generic", "O(1)", NOSUB},
    {"pexpire", CommandId::kPExpire, -3, kX | kFlagWrite | kFlagFast, KEY1, "@keyspace @write @fast", "",
     "RW update", nullptr, "Sets the expiration time of a key in milliseconds.", "2.6.0", "generic", "O(1)", NOSUB},
    {"expireat", CommandId::kExpireAt, -3, kX | kFlagWrite | kFlagFast, KEY1, "@keyspace @write @fast", "",
     "RW update", nullptr, "Sets the expiration time of a key to a Unix timestamp.", "1.2.0", "generic", "O(1)",
     NOSUB},
    {"pexpireat", CommandId::kPExpireAt, -3, kX | kFlagWrite | kFlagFast, KEY1, "@keyspace @write @fast", "",
     "RW update", nullptr, "Sets the expiration time of a key to a Unix milliseconds timestamp.", "2.6.0",
     "generic", "O(1)", NOSUB},
    {"persist", CommandId::kPersist, 2, kX | kFlagWrite | kFlagFast, KEY1, "@keyspace @write @fast", "", "RW update",
     nullptr, "Removes the expiration time of a key.", "2.2.0", "generic", "O(1)", NOSUB},
    {"incr", CommandId::kIncr, 2, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "RW access update", nullptr,
     "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0",
     "string", "O(1)", NOSUB},
    {"incrby", CommandId::kIncrBy, 3, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "RW access update",
     nullptr, "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
     "1.0.0", "string", "O(1)", NOSUB},
    {"decr", CommandId::kDecr, 2, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "RW access update", nullptr,
     "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0",
     "string", "O(1)", NOSUB},
    {"decrby", CommandId::kDecrBy, 3, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "RW access update",
     nullptr, "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
     "1.0.0", "string", "O(1)", NOSUB},
    {"incrbyfloat", CommandId::kIncrByFloat, 3, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "",
     "RW access update", nullptr,
     "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
     "2.6.0", "string", "O(1)", NOSUB},
    {"append", CommandId::kAppend, 3, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "RW insert", nullptr,
     "Appends a string to the value of a key. Creates the key if it doesn't exist.", "2.0.0", "string",
     "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present "
     "value is of any size, since the dynamic string library used by Redis will double the free space available "
     "on every reallocation.",
     NOSUB},
    {"strlen", CommandId::kStrLen, 2, kX | kFlagReadOnly | kFlagFast, KEY1, "@read @string @fast", "", "RO", nullptr,
     "Returns the length of a string value.", "2.2.0", "string", "O(1)", NOSUB},
    {"getdel", CommandId::kGetDel, 2, kX | kFlagWrite | kFlagFast, KEY1, "@write @string @fast", "",
     "RW access delete", nullptr, "Returns the string value of a key after deleting the key.", "6.2.0", "string",
     "O(1)", NOSUB},
    {"getex", CommandId::kGetEx, -2, kX | kFlagWrite | kFlagFast, KEY1, "@write @string @fast", "",
     "RW access update", "RW and UPDATE because it changes the TTL",
     "Returns the string value of a key after setting its expiration time.", "6.2.0", "string", "O(1)", NOSUB},
    {"getset", CommandId::kGetSet, 3, kX | kRW | kFlagFast, KEY1, "@write @string @fast", "", "RW access update",
     nullptr, "Returns the previous string value of a key after setting it to a new value.", "1.0.0", "string",
     "O(1)", NOSUB},
    {"type", CommandId::kType, 2, kX | kFlagReadOnly | kFlagFast, KEY1, "@keyspace @read @fast", "", "RO", nullptr,
     "Determines the type of value stored at a key.", "1.0.0", "generic", "O(1)", NOSUB},
    {"keys", CommandId::kKeys, 2, kX | kFlagReadOnly, NOKEY, "@keyspace @read @slow @dangerous",
     "request_policy:all_shards nondeterministic_output_order", nullptr, nullptr,
     "Returns all key names that match a pattern.", "1.0.0", "generic",
     "O(N) with N being the number of keys in the database, under the assumption that the key names in the "
     "database and the given pattern have limited length.",
     NOSUB},
    {"scan", CommandId::kScan, -2, kX | kFlagReadOnly, NOKEY, "@keyspace @read @slow",
     "nondeterministic_output request_policy:special", nullptr, nullptr,
     "Iterates over the key names in the database.", "2.8.0", "generic",
     "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to "
     "return back to 0. N is the number of elements inside the collection.",
     NOSUB},
    {"dbsize", CommandId::kDbSize, 1, kX | kFlagReadOnly | kFlagFast, NOKEY, "@keyspace @read @fast",
     "request_policy:all_shards response_policy:agg_sum", nullptr, nullptr,
     "Returns the number of keys in the database.", "1.0.0", "server", "O(1)", NOSUB},
    {"flushdb", CommandId::kFlushDb, -1, kX | kFlagWrite, NOKEY, "@keyspace @write @slow @dangerous",
     "request_policy:all_shards response_policy:all_succeeded", nullptr, nullptr,
     "Remove all keys from the current database.", "1.0.0", "server",
     "O(N) where N is the number of keys in the selected database", NOSUB},
    {"flushall", CommandId::kFlushAll, -1, kX | kFlagWrite, NOKEY, "@keyspace @write @slow @dangerous",
     "request_policy:all_shards response_policy:all_succeeded", nullptr, nullptr,
     "Removes all keys from all databases.", "1.0.0", "server",
     "O(N) where N is the total number of keys in all databases", NOSUB},
    {"info", CommandId::kInfo, -1, kX | kFlagLoading | kFlagStale, NOKEY, "@slow @dangerous",
     "nondeterministic_output request_policy:all_shards response_policy:special", nullptr, nullptr,
     "Returns information and statistics about the server.", "1.0.0", "server", "O(1)", NOSUB},
    {"auth", CommandId::kAuth, -2, kX | kConnFlags | kFlagNoMulti, NOKEY, "@fast @connection", "", nullptr, nullptr,
     "Authenticates the connection.", "1.0.0", "connection",
     "O(N) where N is the number of passwords defined for the user", NOSUB},
    {"ping", CommandId::kPing, -1, kFlagFast, NOKEY, "@fast @connection",
     "request_policy:all_shards response_policy:all_succeeded", nullptr, nullptr, "Returns the server's liveliness response.",
     "1.0.0", "connection", "O(1)", NOSUB},
    {"echo", CommandId::kEcho, 2, kFlagLoading | kFlagStale | kFlagFast, NOKEY, "@fast @connection", "", nullptr,
     nullptr, "Returns the given string.", "1.0.0", "connection", "O(1)", NOSUB},
    {"select", CommandId::kSelect, 2, kFlagLoading | kFlagStale | kFlagFast, NOKEY, "@fast @connection", "",
     nullptr, nullptr, "Changes the selected database.", "1.0.0", "connection", "O(1)", NOSUB},
    {"hello", CommandId::kHello, -1, kConnFlags | kFlagNoMulti, NOKEY, "@fast @connection", "", nullptr, nullptr,
     "Handshakes with the Redis server.", "6.0.0", "connection", "O(1)", NOSUB},
    {"client", CommandId::kClient, -2, 0, NOKEY, "@slow", "", nullptr, nullptr,
     "A container for client connection commands.", "2.4.0", "connection", "Depends on subcommand.",
     kClientSubcommands, sizeof(kClientSubcommands) / sizeof(kClientSubcommands[0])},
    {"command", CommandId::kCommand, -1, kFlagLoading | kFlagStale, NOKEY, "@slow @connection",
     "nondeterministic_output_order", nullptr, nullptr, "Returns detailed information about all commands.", "2.8.13",
     "server", "O(N) where N is the total number of Redis commands", kCommandSubcommands,
     sizeof(kCommandSubcommands) / sizeof(kCommandSubcommands[0])},
    {"config", CommandId::kConfig, -2, 0, NOKEY, "@slow", "", nullptr, nullptr,
     "A container for server configuration commands.", "2.0.0", "server", "Depends on subcommand.",
     kConfigSubcommands, sizeof(kConfigSubcommands) / sizeof(kConfigSubcommands[0])},
    {"quit", CommandId::kQuit, -1, kConnFlags, NOKEY, "@fast @connection", "", nullptr, nullptr,
     "Closes the connection.", "1.0.0", "connection", "O(1)", NOSUB},
    {"reset", CommandId::kReset, 1, kConnFlags, NOKEY, "@fast @connection", "", nullptr, nullptr,
     "Resets the connection.", "6.2.0", "connection", "O(1)", NOSUB},
    {"multi", CommandId::kMulti, 1, kFlagNoScript | kFlagLoading | kFlagStale | kFlagFast | kFlagAllowBusy, NOKEY,
     "@fast @transaction", "", nullptr, nullptr, "Starts a transaction.", "1.2.0", "transactions", "O(1)", NOSUB},
    {"exec", CommandId::kExec, 1, kFlagNoScript | kFlagLoading | kFlagStale | kFlagSkipSlowlog, NOKEY,
     "@slow @transaction", "", nullptr, nullptr, "Executes all commands in a transaction.", "1.2.0", "transactions",
     "Depends on commands in the transaction", NOSUB},
    {"discard", CommandId::kDiscard, 1, kFlagNoScript | kFlagLoading | kFlagStale | kFlagFast | kFlagAllowBusy,
     NOKEY, "@fast @transaction", "", nullptr, nullptr, "Discards a transaction.", "2.0.0", "transactions",
     "O(N), when N is the number of queued commands", NOSUB},
    {"watch", CommandId::kWatch, -2, kFlagNoScript | kFlagLoading | kFlagStale | kFlagFast | kFlagAllowBusy, 1, -1, 1,
     "@fast @transaction", "", "RO", nullptr,
     "Monitors changes to keys to determine the execution of a transaction.", "2.2.0", "transactions",
     "O(1) for every key.", NOSUB},
    {"unwatch", CommandId::kUnwatch, 1, kFlagNoScript | kFlagLoading | kFlagStale | kFlagFast | kFlagAllowBusy,
     NOKEY, "@fast @transaction", "", nullptr, nullptr, "Forgets about watched keys of a transaction.", "2.2.0",
     "transactions", "O(1)", NOSUB},
};

constexpr size_t kCommandCount = sizeof(kCommands) / sizeof(kCommands[0]);

/* Case-insensitive equality of a byte string and a lower-case C string. */
bool EqualsNoCase(std::string_view s, const char* lower) noexcept {
  size_t n = std::strlen(lower);
  if (s.size() != n) return false;
  for (size_t i = 0; i < n; i++) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != static_cast<unsigned char>(lower[i])) return false;
  }
  return true;
}

/* Redis's "%.*s" of an argument: C string, at most `max` bytes. */
std::string_view Printable(std::string_view arg, size_t max) noexcept {
  std::string_view c = CStr(arg);
  return c.size() > max ? c.substr(0, max) : c;
}

/* rejectCommandFormat()/addReplyErrorFormat(): CR/LF become spaces. */
std::string MapNewlines(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

/* addReplyErrorFormat() also trims CR/LF at both ends before mapping. */
std::string TrimAndMapNewlines(std::string s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == '\r' || s[b] == '\n')) b++;
  while (e > b && (s[e - 1] == '\r' || s[e - 1] == '\n')) e--;
  return MapNewlines(s.substr(b, e - b));
}

const char kNotInteger[] = "ERR value is not an integer or out of range";
const char kSyntaxError[] = "ERR syntax error";

std::string ExpireTimeError(const CommandSpec& spec) {
  return std::string("ERR invalid expire time in '") + spec.name + "' command";
}

/*
 * ParseSetOptions: parseExtendedStringArgumentsOrReply() for SET (for_set) and
 * GETEX: each option may repeat, conflicting ones are a syntax error, and
 * EX/PX/EXAT/PXAT take the next argument (a trailing one is a syntax error).
 */
bool ParseSetOptions(const std::vector<std::string_view>& argv, size_t first, bool for_set, bool* nx, bool* xx,
                     bool* get, ExpiryMode* mode, std::string_view* expire_arg) {
  bool keepttl = false, persist = false;
  bool ex = false, px = false, exat = false, pxat = false;
  for (size_t j = first; j < argv.size(); j++) {
    std::string_view opt = argv[j];
    bool has_next = j + 1 < argv.size();
    if (OptionIs(opt, "nx") && !*xx && for_set) {
      *nx = true;
    } else if (OptionIs(opt, "xx") && !*nx && for_set) {
      *xx = true;
    } else if (OptionIs(opt, "get") && for_set) {
      *get = true;
    } else if (OptionIs(opt, "keepttl") && !persist && !ex && !exat && !px && !pxat && for_set) {
      keepttl = true;
    } else if (OptionIs(opt, "persist") && !for_set && !ex && !exat && !px && !pxat && !keepttl) {
      persist = true;
    } else if (OptionIs(opt, "ex") && !keepttl && !persist && !exat && !px && !pxat && has_next) {
      ex = true;
      *expire_arg = argv[++j];
    } else if (OptionIs(opt, "px") && !keepttl && !persist && !ex && !exat && !pxat && has_next) {
      px = true;
      *expire_arg = argv[++j];
    } else if (OptionIs(opt, "exat") && !keepttl && !persist && !ex && !px && !pxat && has_next) {
      exat = true;
      *expire_arg = argv[++j];
    } else if (OptionIs(opt, "pxat") && !keepttl && !persist && !ex && !exat && !px && has_next) {
      pxat = true;
      *expire_arg = argv[++j];
    } else {
      return false;
    }
  }
  *mode = ex ? ExpiryMode::kEx
             : px ? ExpiryMode::kPx
                  : exat ? ExpiryMode::kExAt
                         : pxat ? ExpiryMode::kPxAt
                                : keepttl ? ExpiryMode::kKeepTtl : persist ? ExpiryMode::kPersist : ExpiryMode::kNone;
  return true;
}

/*
 * ExpireToAbsoluteMs: getExpireMillisecondsOrReply(): a positive integer, in
 * seconds for EX/EXAT, relative to now_ms for EX/PX, with overflow checks.
 */
bool ExpireToAbsoluteMs(const CommandSpec& spec, std::string_view arg, ExpiryMode mode, int64_t now_ms,
                        int64_t* out, std::string* error) {
  int64_t ms = 0;
  if (!ParseLongLong(arg, &ms)) {
    *error = kNotInteger;
    return false;
  }
  bool seconds = mode == ExpiryMode::kEx || mode == ExpiryMode::kExAt;
  if (ms <= 0 || (seconds && ms > INT64_MAX / 1000)) {
    *error = ExpireTimeError(spec);
    return false;
  }
  if (seconds) ms *= 1000;
  if (mode == ExpiryMode::kEx || mode == ExpiryMode::kPx) {
    if (ms > INT64_MAX - now_ms) {
      *error = ExpireTimeError(spec);
      return false;
    }
    ms += now_ms;
  }
  *out = ms;
  return true;
}

}  // namespace

const CommandSpec* CommandTable(size_t* count) noexcept {
  *count = kCommandCount;
  return kCommands;
}

std::string_view CStr(std::string_view arg) noexcept {
  size_t nul = arg.find('\0');
  return nul == std::string_view::npos ? arg : arg.substr(0, nul);
}

bool OptionIs(std::string_view arg, const char* lower) noexcept { return EqualsNoCase(CStr(arg), lower); }

const CommandSpec* FindCommand(std::string_view name) noexcept {
  for (const CommandSpec& spec : kCommands) {
    if (EqualsNoCase(name, spec.name)) return &spec;
  }
  return nullptr;
}

const CommandSpec* FindCommandByFullName(std::string_view fullname) noexcept {
  size_t bar = fullname.find('|');
  const CommandSpec* base = FindCommand(fullname.substr(0, bar));
  if (base == nullptr || bar == std::string_view::npos) return base;
  for (size_t i = 0; i < base->subcommand_count; i++) {
    if (EqualsNoCase(fullname, base->subcommands[i].name)) return &base->subcommands[i];
  }
  return nullptr;
}

std::string ArityError(const CommandSpec& spec) {
  return std::string("ERR wrong number of arguments for '") + spec.name + "' command";
}

/*
 * ResolveCommand: lookupCommand() + the unknown-command and arity checks of
 * processCommand(), with Redis 7.0's texts.
 */
const CommandSpec* ResolveCommand(const std::vector<std::string_view>& argv, std::string* error) {
  const CommandSpec* spec = argv.empty() ? nullptr : FindCommand(argv[0]);
  if (spec == nullptr) {
    std::string args;
    for (size_t i = 1; i < argv.size() && args.size() < 128; i++) {
      size_t room = 128 - args.size();
      args += '\'';
      args += Printable(argv[i], room);
      args += "' ";
    }
    std::string msg = "ERR unknown command '";
    msg += Printable(argv.empty() ? std::string_view() : argv[0], 128);
    msg += "', with args beginning with: ";
    msg += args;
    *error = MapNewlines(std::move(msg));
    return nullptr;
  }
  if (spec->subcommand_count > 0 && argv.size() >= 2) {
    const CommandSpec* sub = nullptr;
    for (size_t i = 0; i < spec->subcommand_count; i++) {
      const char* full = spec->subcommands[i].name;
      if (EqualsNoCase(argv[1], std::strchr(full, '|') + 1)) sub = &spec->subcommands[i];
    }
    if (sub == nullptr) {
      std::string upper(CStr(argv[0]));
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      std::string msg = "ERR unknown subcommand '";
      msg += Printable(argv[1], 128);
      msg += "'. Try " + upper + " HELP.";
      *error = MapNewlines(std::move(msg));
      return nullptr;
    }
    spec = sub;
  }
  int argc = static_cast<int>(argv.size());
  if ((spec->arity > 0 && spec->arity != argc) || argc < -spec->arity) {
    *error = ArityError(*spec);
    return nullptr;
  }
  return spec;
}

/*
 * ParseRequest: per-command argument checks, in Redis's order.
 */
bool ParseRequest(const CommandSpec& spec, const std::vector<std::string_view>& argv, int64_t now_ms,
                  Request* out, std::string* error) {
  out->spec = &spec;
  out->id = spec.id;
  const size_t argc = argv.size();
  switch (spec.id) {
    case CommandId::kGet: case CommandId::kGetDel: case CommandId::kTtl: case CommandId::kPTtl:
    case CommandId::kPersist: case CommandId::kStrLen: case CommandId::kType:
      out->args = KeyRequest{argv[1]};
      return true;
    case CommandId::kMGet: case CommandId::kDel: case CommandId::kUnlink: case CommandId::kExists: {
      MultiKeyRequest r;
      r.keys.assign(argv.begin() + 1, argv.end());
      out->args = std::move(r);
      return true;
    }
    case CommandId::kAppend: case CommandId::kGetSet:
      out->args = KeyValueRequest{argv[1], argv[2]};
      return true;
    case CommandId::kIncr: case CommandId::kDecr:
      out->args = IncrRequest{argv[1], spec.id == CommandId::kIncr ? 1 : -1};
      return true;
    case CommandId::kIncrBy: case CommandId::kDecrBy: {
      int64_t v = 0;
      if (!ParseLongLong(argv[2], &v)) {
        *error = kNotInteger;
        return false;
      }
      if (spec.id == CommandId::kDecrBy) {
        if (v == INT64_MIN) {
          *error = "ERR decrement would overflow";
          return false;
        }
        v = -v;
      }
      out->args = IncrRequest{argv[1], v};
      return true;
    }
    case CommandId::kIncrByFloat: {
      long double v = 0;
      if (!ParseLongDouble(argv[2], &v)) {
        *error = "ERR value is not a valid float";
        return false;
      }
      out->args = IncrByFloatRequest{argv[1], v};
      return true;
    }
    case CommandId::kSet: {
      SetRequest r;
      r.key = argv[1];
      r.value = argv[2];
      std::string_view expire_arg;
      if (!ParseSetOptions(argv, 3, true, &r.nx, &r.xx, &r.get, &r.expiry, &expire_arg)) {
        *error = kSyntaxError;
        return false;
      }
      if (r.expiry != ExpiryMode::kNone && r.expiry != ExpiryMode::kKeepTtl &&
          !ExpireToAbsoluteMs(spec, expire_arg, r.expiry, now_ms, &r.expire_at_ms, error)) {
        return false;
      }
      out->args = std::move(r);
      return true;
    }
    case CommandId::kSetNx: {
      SetRequest r;
      r.key = argv[1];
      r.value = argv[2];
      r.nx = true;
      out->args = std::move(r);
      return true;
    }
    case CommandId::kSetEx: case CommandId::kPSetEx: {
      SetRequest r;
      r.key = argv[1];
      r.value = argv[3];
      r.expiry = spec.id == CommandId::kSetEx ? ExpiryMode::kEx : ExpiryMode::kPx;
      if (!ExpireToAbsoluteMs(spec, argv[2], r.expiry, now_ms, &r.expire_at_ms, error)) return false;
      out->args = std::move(r);
      return true;
    }
    case CommandId::kMSet: case CommandId::kMSetNx: {
      if (argc % 2 == 0) {
        *error = ArityError(spec);
        return false;
      }
      MSetRequest r;
      r.nx = spec.id == CommandId::kMSetNx;
      r.pairs.reserve(argc / 2);
      for (size_t i = 1; i + 1 < argc; i += 2) r.pairs.emplace_back(argv[i], argv[i + 1]);
      out->args = std::move(r);
      return true;
    }
    case CommandId::kExpire: case CommandId::kPExpire: case CommandId::kExpireAt: case CommandId::kPExpireAt: {
      /* parseExtendedExpireArgumentsOrReply() runs before the time is read. */
      bool nx = false, xx = false, gt = false, lt = false;
      for (size_t j = 3; j < argc; j++) {
        if (OptionIs(argv[j], "nx")) nx = true;
        else if (OptionIs(argv[j], "xx")) xx = true;
        else if (OptionIs(argv[j], "gt")) gt = true;
        else if (OptionIs(argv[j], "lt")) lt = true;
        else {
          *error = TrimAndMapNewlines("ERR Unsupported option " + std::string(CStr(argv[j])));
          return false;
        }
      }
      if ((nx && xx) || (nx && gt) || (nx && lt)) {
        *error = "ERR NX and XX, GT or LT options at the same time are not compatible";
        return false;
      }
      if (gt && lt) {
        *error = "ERR GT and LT options at the same time are not compatible";
        return false;
      }
      int64_t when = 0;
      if (!ParseLongLong(argv[2], &when)) {
        *error = kNotInteger;
        return false;
      }
      bool seconds = spec.id == CommandId::kExpire || spec.id == CommandId::kExpireAt;
      int64_t base = (spec.id == CommandId::kExpire || spec.id == CommandId::kPExpire) ? now_ms : 0;
      if (seconds) {
        if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) {
          *error = ExpireTimeError(spec);
          return false;
        }
        when *= 1000;
      }
      if (when > INT64_MAX - base) {
        *error = ExpireTimeError(spec);
        return false;
      }
      when += base;
      ExpireRequest r;
      r.key = argv[1];
      r.expire_at_ms = when;
      r.nx = nx;
      r.xx = xx;
      r.gt = gt;
      r.lt = lt;
      out->args = std::move(r);
      return true;
    }
    case CommandId::kGetEx: {
      GetExRequest r;
      r.key = argv[1];
      bool unused_nx = false, unused_xx = false, unused_get = false;
      std::string_view expire_arg;
      if (!ParseSetOptions(argv, 2, false, &unused_nx, &unused_xx, &unused_get, &r.expiry, &expire_arg)) {
        *error = kSyntaxError;
        return false;
      }
      if (r.expiry != ExpiryMode::kNone && r.expiry != ExpiryMode::kPersist) {
        std::string deferred;
        if (!ExpireToAbsoluteMs(spec, expire_arg, r.expiry, now_ms, &r.expire_at_ms, &deferred)) {
          r.deferred_error = std::move(deferred);
        }
      }
      out->args = std::move(r);
      return true;
    }
    case CommandId::kKeys:
      out->args = KeysRequest{argv[1]};
      return true;
    case CommandId::kScan: {
      ScanRequest r;
      /* parseScanCursorOrReply(): strtoul() over the C string. */
      std::string cursor(CStr(argv[1]));
      errno = 0;
      char* end = nullptr;
      unsigned long long c = std::strtoull(cursor.c_str(), &end, 10);
      if ((!cursor.empty() && std::isspace(static_cast<unsigned char>(cursor[0]))) || *end != '\0' ||
          errno == ERANGE) {
        *error = "ERR invalid cursor";
        return false;
      }
      r.cursor = c;
      size_t i = 2;
      while (i < argc) {
        size_t left = argc - i;
        if (OptionIs(argv[i], "count") && left >= 2) {
          int64_t count = 0;
          if (!ParseLongLong(argv[i + 1], &count)) {
            *error = kNotInteger;
            return false;
          }
          if (count < 1) {
            *error = kSyntaxError;
            return false;
          }
          r.count = count;
          i += 2;
        } else if (OptionIs(argv[i], "match") && left >= 2) {
          r.pattern = argv[i + 1];
          r.has_pattern = !(r.pattern.size() == 1 && r.pattern[0] == '*');
          i += 2;
        } else if (OptionIs(argv[i], "type") && left >= 2) {
          r.has_type = true;
          r.type = argv[i + 1];
          i += 2;
        } else {
          *error = kSyntaxError;
          return false;
        }
      }
      out->args = std::move(r);
      return true;
    }
    case CommandId::kDbSize:
      out->args = NoArgsRequest{};
      return true;
    case CommandId::kFlushDb: case CommandId::kFlushAll: {
      FlushRequest r;
      if (argc == 2 && OptionIs(argv[1], "sync")) r.async = false;
      else if (argc == 2 && OptionIs(argv[1], "async")) r.async = true;
      else if (argc != 1) {
        *error = kSyntaxError;
        return false;
      }
      out->args = r;
      return true;
    }
    case CommandId::kInfo:
      out->args = InfoRequest{};
      return true;
    case CommandId::kAuth: {
      if (argc > 3) {
        *error = kSyntaxError;
        return false;
      }
      AuthRequest r;
      r.username = argc == 2 ? std::string_view("default") : argv[1];
      r.password = argv[argc - 1];
      r.password_only = argc == 2;
      out->args = r;
      return true;
    }
    default:
      *error = "ERR internal error: '" + std::string(spec.name) + "' is not a data command";
      return false;
  }
}

bool ValidateClientName(std::string_view name, std::string* error) {
  for (char c : name) {
    if (c < '!' || c > '~') {
      *error = "ERR Client names cannot contain spaces, newlines or special characters.";
      return false;
    }
  }
  return true;
}

/* ParseHello: helloCommand()'s argument handling (Redis 7.0). */
bool ParseHello(const std::vector<std::string_view>& argv, HelloRequest* out, std::string* error) {
  size_t next = 1;
  if (argv.size() >= 2) {
    int64_t ver = 0;
    if (!ParseLongLong(argv[next++], &ver)) {
      *error = "ERR Protocol version is not an integer or out of range";
      return false;
    }
    if (ver < 2 || ver > 3) {
      *error = "NOPROTO unsupported protocol version";
      return false;
    }
    out->protocol = ver;
  }
  for (size_t j = next; j < argv.size(); j++) {
    size_t more = argv.size() - 1 - j;
    if (OptionIs(argv[j], "auth") && more >= 2) {
      out->has_auth = true;
      out->username = argv[j + 1];
      out->password = argv[j + 2];
      j += 2;
    } else if (OptionIs(argv[j], "setname") && more >= 1) {
      if (!ValidateClientName(argv[j + 1], error)) return false;
      out->has_setname = true;
      out->name = argv[j + 1];
      j++;
    } else {
      *error = TrimAndMapNewlines("ERR Syntax error in HELLO option '" + std::string(CStr(argv[j])) + "'");
      return false;
    }
  }
  return true;
}

void WriteInfoReply(ReplyWriter& w, const InfoRequest& info, int64_t keys, int64_t expires) {
  std::string text = info.server_text;
  if (info.keyspace) {
    if (!text.empty()) text += "\r\n";
    text += "# Keyspace\r\n";
    if (keys > 0) {
      text += "db0:keys=";
      AppendInteger(&text, keys);
      text += ",expires=";
      AppendInteger(&text, expires);
      text += ",avg_ttl=0\r\n";
    }
  }
  w.Verbatim(text);
}

namespace {

/* Writes a space-separated word list as a set of status strings (or bulk
 * strings: COMMAND INFO's tips). */
void WriteWordSet(ReplyWriter& w, const char* words, bool bulk = false) {
  std::vector<std::string_view> list;
  std::string_view s(words ? words : "");
  while (!s.empty()) {
    size_t sp = s.find(' ');
    std::string_view word = s.substr(0, sp);
    if (!word.empty()) list.push_back(word);
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp + 1);
  }
  w.Set(list.size());
  for (std::string_view word : list) {
    if (bulk) w.Bulk(word);
    else w.Simple(word);
  }
}

void WriteFlags(ReplyWriter& w, uint32_t flags) {
  static const struct {
    uint32_t flag;
    const char* name;
  } kNames[] = {{kFlagWrite, "write"},       {kFlagReadOnly, "readonly"}, {kFlagDenyOom, "denyoom"},
                {kFlagAdmin, "admin"},       {kFlagNoScript, "noscript"}, {kFlagLoading, "loading"},
                {kFlagStale, "stale"},       {kFlagSkipSlowlog, "skip_slowlog"}, {kFlagFast, "fast"},
                {kFlagNoAuth, "no_auth"},    {kFlagAllowBusy, "allow_busy"}};
  size_t n = 0;
  for (const auto& f : kNames) n += (flags & f.flag) ? 1 : 0;
  w.Set(n);
  for (const auto& f : kNames) {
    if (flags & f.flag) w.Simple(f.name);
  }
}

}  // namespace

/* WriteCommandInfo: addReplyCommandInfo() of Redis 7.0 (null for nullptr). */
void WriteCommandInfo(ReplyWriter& w, const CommandSpec* spec) {
  if (spec == nullptr) {
    w.Null();
    return;
  }
  w.Array(10);
  w.Bulk(spec->name);
  w.Integer(spec->arity);
  WriteFlags(w, spec->flags);
  w.Integer(spec->first_key);
  w.Integer(spec->last_key);
  w.Integer(spec->key_step);
  WriteWordSet(w, spec->acl_categories);
  WriteWordSet(w, spec->tips, true);
  if (spec->key_spec_flags == nullptr) {
    w.Array(0);
  } else {
    w.Array(1);
    w.Map(spec->key_spec_notes ? 4 : 3);
    if (spec->key_spec_notes) {
      w.Bulk("notes");
      w.Bulk(spec->key_spec_notes);
    }
    w.Bulk("flags");
    WriteWordSet(w, spec->key_spec_flags);
    w.Bulk("begin_search");
    w.Map(2);
    w.Bulk("type");
    w.Bulk("index");
    w.Bulk("spec");
    w.Map(1);
    w.Bulk("index");
    w.Integer(spec->first_key);
    w.Bulk("find_keys");
    w.Map(2);
    w.Bulk("type");
    w.Bulk("range");
    w.Bulk("spec");
    w.Map(3);
    w.Bulk("lastkey");
    w.Integer(spec->last_key < 0 ? spec->last_key : spec->last_key - spec->first_key);
    w.Bulk("keystep");
    w.Integer(spec->key_step);
    w.Bulk("limit");
    w.Integer(0);
  }
  w.Array(spec->subcommand_count);
  for (size_t i = 0; i < spec->subcommand_count; i++) WriteCommandInfo(w, &spec->subcommands[i]);
}

/* WriteCommandDocs: the value of one COMMAND DOCS entry (summary, since,
 * group, complexity, subcommands; argument docs are not provided). */
void WriteCommandDocs(ReplyWriter& w, const CommandSpec& spec) {
  w.Map(4 + (spec.subcommand_count ? 1 : 0));
  w.Bulk("summary");
  w.Bulk(spec.summary);
  w.Bulk("since");
  w.Bulk(spec.since);
  w.Bulk("group");
  w.Bulk(spec.group);
  w.Bulk("complexity");
  w.Bulk(spec.complexity);
  if (spec.subcommand_count) {
    w.Bulk("subcommands");
    w.Map(spec.subcommand_count);
    for (size_t i = 0; i < spec.subcommand_count; i++) {
      w.Bulk(spec.subcommands[i].name);
      WriteCommandDocs(w, spec.subcommands[i]);
    }
  }
}

}  // namespace fastpgcache::resp
