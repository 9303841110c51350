/*
 * protocol.cpp
 *
 * Implementation of the RESP request parser, the reply writer and the number
 * helpers declared in protocol.hpp. Written after reading redis/redis and
 * valkey-io/valkey src/networking.c, src/sds.c and src/util.c; behaviour was
 * checked against redis-server 7.0 by test/resp/diff_protocol.py.
 */
#include "protocol.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fastpgcache::resp {

namespace {

/* C-locale isspace(), as sdssplitargs() and string2ld() see blanks. */
bool IsSpace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool IsHexDigit(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int HexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

/*
 * Finds the first `target` byte at or after `from`, stopping at a NUL byte
 * (Redis 7.0 uses strchr() on its NUL-terminated query buffer, so a NUL hides
 * any line end after it). Returns the index of the target, or the index of the
 * NUL / the end of the window with *found false.
 */
size_t FindLineEnd(std::string_view input, size_t from, char target, bool* found) noexcept {
  const char* data = input.data();
  size_t n = input.size();
  size_t i = from;
  while (i < n) {
    const char* hit = static_cast<const char*>(std::memchr(data + i, target, n - i));
    size_t stop = hit ? static_cast<size_t>(hit - data) : n;
    const char* nul = static_cast<const char*>(std::memchr(data + i, '\0', stop - i));
    if (nul) {
      *found = false;
      return static_cast<size_t>(nul - data);
    }
    *found = hit != nullptr;
    return stop;
  }
  *found = false;
  return n;
}

}  // namespace

RequestParser::RequestParser(const ParserLimits& limits) noexcept : limits_(limits) {}

void RequestParser::Reset() noexcept {
  kind_ = Kind::kUnknown;
  multibulk_remaining_ = 0;
  bulk_len_ = -1;
  pos_ = 0;
  scan_pos_ = 0;
  args_.clear();
}

size_t RequestParser::PendingBulkEnd() const noexcept {
  if (kind_ != Kind::kMultibulk || bulk_len_ < 0) return 0;
  return pos_ + static_cast<size_t>(bulk_len_) + 2;
}

/*
 * Parse: dispatches on the first byte of the request ('*' = multibulk,
 * anything else = inline, as Redis does) and resets the state once a request
 * is complete or has failed.
 */
ParseStatus RequestParser::Parse(std::string_view input, bool auth_required,
                                 std::vector<std::string_view>* argv, size_t* consumed,
                                 std::string* error) {
  argv->clear();
  *consumed = 0;
  if (input.empty()) return ParseStatus::kNeedMore;
  if (kind_ == Kind::kUnknown) kind_ = input[0] == '*' ? Kind::kMultibulk : Kind::kInline;
  ParseStatus status = kind_ == Kind::kInline
                           ? ParseInline(input, argv, consumed, error)
                           : ParseMultibulk(input, auth_required, argv, consumed, error);
  if (status != ParseStatus::kNeedMore) Reset();
  return status;
}

/*
 * ParseInline: one line ended by "\n" or "\r\n", split like sdssplitargs().
 */
ParseStatus RequestParser::ParseInline(std::string_view input, std::vector<std::string_view>* argv,
                                       size_t* consumed, std::string* error) {
  bool found = false;
  size_t nl = FindLineEnd(input, scan_pos_, '\n', &found);
  if (!found) {
    scan_pos_ = nl;
    if (input.size() > limits_.max_inline_len) {
      *error = "Protocol error: too big inline request";
      return ParseStatus::kError;
    }
    return ParseStatus::kNeedMore;
  }
  if (nl > limits_.max_inline_len) {
    *error = "Protocol error: too big inline request";
    return ParseStatus::kError;
  }
  size_t line_len = (nl > 0 && input[nl - 1] == '\r') ? nl - 1 : nl;
  if (!SplitInlineArgs(input.substr(0, line_len), &inline_args_)) {
    *error = "Protocol error: unbalanced quotes in request";
    return ParseStatus::kError;
  }
  *consumed = nl + 1;
  if (inline_args_.empty()) return ParseStatus::kEmpty;
  argv->reserve(inline_args_.size());
  for (const std::string& arg : inline_args_) argv->emplace_back(arg);
  return ParseStatus::kCommand;
}

/*
 * ParseMultibulk: "*<count>\r\n" then <count> times "$<len>\r\n<bytes>\r\n".
 * Resumable at any byte: the header and each bulk are only consumed once
 * complete, and positions are offsets into the window.
 */
ParseStatus RequestParser::ParseMultibulk(std::string_view input, bool auth_required,
                                          std::vector<std::string_view>* argv, size_t* consumed,
                                          std::string* error) {
  const size_t n = input.size();
  if (multibulk_remaining_ == 0) {
    bool found = false;
    size_t cr = FindLineEnd(input, scan_pos_, '\r', &found);
    if (!found) {
      scan_pos_ = cr;
      if (n > limits_.max_inline_len) {
        *error = "Protocol error: too big mbulk count string";
        return ParseStatus::kError;
      }
      return ParseStatus::kNeedMore;
    }
    if (cr > limits_.max_inline_len) {
      *error = "Protocol error: too big mbulk count string";
      return ParseStatus::kError;
    }
    scan_pos_ = cr;
    if (cr + 2 > n) return ParseStatus::kNeedMore; /* the byte after '\r' */
    int64_t count = 0;
    if (!ParseLongLong(input.substr(1, cr - 1), &count) || count > limits_.max_multibulk_len) {
      *error = "Protocol error: invalid multibulk length";
      return ParseStatus::kError;
    }
    if (count > limits_.unauth_max_multibulk_len && auth_required) {
      *error = "Protocol error: unauthenticated multibulk length";
      return ParseStatus::kError;
    }
    pos_ = cr + 2;
    if (count <= 0) {
      *consumed = pos_;
      return ParseStatus::kEmpty;
    }
    multibulk_remaining_ = count;
    bulk_len_ = -1;
    args_.clear();
    args_.reserve(static_cast<size_t>(count < 1024 ? count : 1024));
    scan_pos_ = pos_;
  }

  while (multibulk_remaining_ > 0) {
    if (bulk_len_ < 0) {
      bool found = false;
      size_t from = scan_pos_ > pos_ ? scan_pos_ : pos_;
      size_t cr = FindLineEnd(input, from, '\r', &found);
      if (!found) {
        scan_pos_ = cr;
        if (n - pos_ > limits_.max_inline_len) {
          *error = "Protocol error: too big bulk count string";
          return ParseStatus::kError;
        }
        return ParseStatus::kNeedMore;
      }
      if (cr - pos_ > limits_.max_inline_len) {
        *error = "Protocol error: too big bulk count string";
        return ParseStatus::kError;
      }
      scan_pos_ = cr;
      if (cr + 2 > n) return ParseStatus::kNeedMore;
      if (input[pos_] != '$') {
        char got = input[pos_];
        if (got == '\r' || got == '\n') got = ' '; /* Redis maps CR/LF in errors */
        *error = "Protocol error: expected '$', got '";
        error->push_back(got);
        error->push_back('\'');
        return ParseStatus::kError;
      }
      int64_t len = 0;
      if (!ParseLongLong(input.substr(pos_ + 1, cr - pos_ - 1), &len) || len < 0 ||
          len > limits_.max_bulk_len) {
        *error = "Protocol error: invalid bulk length";
        return ParseStatus::kError;
      }
      if (len > limits_.unauth_max_bulk_len && auth_required) {
        *error = "Protocol error: unauthenticated bulk length";
        return ParseStatus::kError;
      }
      pos_ = cr + 2;
      bulk_len_ = len;
    }
    if (n - pos_ < static_cast<size_t>(bulk_len_) + 2) return ParseStatus::kNeedMore;
    args_.emplace_back(pos_, static_cast<size_t>(bulk_len_));
    pos_ += static_cast<size_t>(bulk_len_) + 2; /* the two bytes after a bulk: unchecked, as Redis */
    bulk_len_ = -1;
    multibulk_remaining_--;
    scan_pos_ = pos_;
  }
  *consumed = pos_;
  argv->reserve(args_.size());
  for (const auto& [offset, length] : args_) argv->emplace_back(input.data() + offset, length);
  return ParseStatus::kCommand;
}

/*
 * SplitInlineArgs: a bounds-checked port of sdssplitargs()'s state machine; the
 * end of `line` (or its first NUL) plays the role of the C string's NUL.
 */
bool SplitInlineArgs(std::string_view line, std::vector<std::string>* out) {
  out->clear();
  size_t nul = line.find('\0');
  if (nul != std::string_view::npos) line = line.substr(0, nul);
  const size_t n = line.size();
  auto at = [&](size_t i) -> char { return i < n ? line[i] : '\0'; };
  size_t p = 0;
  while (true) {
    while (p < n && IsSpace(line[p])) p++;
    if (p >= n) return true;
    bool in_double = false, in_single = false, done = false;
    std::string current;
    while (!done) {
      char c = at(p);
      if (in_double) {
        if (c == '\\' && at(p + 1) == 'x' && IsHexDigit(at(p + 2)) && IsHexDigit(at(p + 3))) {
          current.push_back(static_cast<char>(HexValue(at(p + 2)) * 16 + HexValue(at(p + 3))));
          p += 3;
        } else if (c == '\\' && at(p + 1) != '\0') {
          p++;
          char e = at(p);
          switch (e) {
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'b': e = '\b'; break;
            case 'a': e = '\a'; break;
            default: break;
          }
          current.push_back(e);
        } else if (c == '"') {
          if (at(p + 1) != '\0' && !IsSpace(at(p + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          current.push_back(c);
        }
      } else if (in_single) {
        if (c == '\\' && at(p + 1) == '\'') {
          p++;
          current.push_back('\'');
        } else if (c == '\'') {
          if (at(p + 1) != '\0' && !IsSpace(at(p + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          current.push_back(c);
        }
      } else {
        switch (c) {
          case ' ': case '\n': case '\r': case '\t': case '\0':
            done = true;
            break;
          case '"':
            in_double = true;
            break;
          case '\'':
            in_single = true;
            break;
          default:
            current.push_back(c);
            break;
        }
      }
      if (p < n) p++;
    }
    out->push_back(std::move(current));
  }
}

/* ParseLongLong: port of Redis string2ll(). */
bool ParseLongLong(std::string_view s, int64_t* value) noexcept {
  const size_t slen = s.size();
  if (slen == 0 || slen >= 21) return false;
  if (slen == 1 && s[0] == '0') {
    *value = 0;
    return true;
  }
  size_t p = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    p++;
    if (p == slen) return false;
  }
  if (s[p] < '1' || s[p] > '9') return false;
  uint64_t v = static_cast<uint64_t>(s[p] - '0');
  p++;
  while (p < slen && s[p] >= '0' && s[p] <= '9') {
    if (v > UINT64_MAX / 10) return false;
    v *= 10;
    uint64_t digit = static_cast<uint64_t>(s[p] - '0');
    if (v > UINT64_MAX - digit) return false;
    v += digit;
    p++;
  }
  if (p < slen) return false;
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return false;
    *value = v == static_cast<uint64_t>(INT64_MAX) + 1 ? INT64_MIN : -static_cast<int64_t>(v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *value = static_cast<int64_t>(v);
  }
  return true;
}

/* ParseLongDouble: port of Redis string2ld() (MAX_LONG_DOUBLE_CHARS = 5 KB). */
bool ParseLongDouble(std::string_view s, long double* value) noexcept {
  constexpr size_t kMaxChars = 5 * 1024;
  char buf[kMaxChars];
  if (s.empty() || s.size() >= kMaxChars) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  errno = 0;
  char* end = nullptr;
  long double v = std::strtold(buf, &end);
  if (IsSpace(buf[0]) || *end != '\0' || static_cast<size_t>(end - buf) != s.size() ||
      (errno == ERANGE && (std::isinf(v) || v == 0.0L)) || errno == EINVAL || std::isnan(v)) {
    return false;
  }
  *value = v;
  return true;
}

std::string FormatDouble(double value) {
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  int len = std::snprintf(buf, sizeof(buf), "%.17g", value);
  return std::string(buf, static_cast<size_t>(len));
}

/* FormatLongDoubleHuman: port of ld2string(LD_STR_HUMAN). */
std::string FormatLongDoubleHuman(long double value) {
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  constexpr size_t kMaxChars = 5 * 1024;
  char buf[kMaxChars];
  int printed = std::snprintf(buf, sizeof(buf), "%.17Lf", value);
  if (printed < 0 || static_cast<size_t>(printed) + 1 > sizeof(buf)) return std::string();
  size_t len = static_cast<size_t>(printed);
  if (std::memchr(buf, '.', len) != nullptr) {
    while (len > 0 && buf[len - 1] == '0') len--;
    if (len > 0 && buf[len - 1] == '.') len--;
  }
  if (len == 2 && buf[0] == '-' && buf[1] == '0') return "0";
  return std::string(buf, len);
}

void AppendInteger(std::string* out, int64_t v) {
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = end;
  uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  out->append(p, static_cast<size_t>(end - p));
}

void ReplyWriter::Header(char type, int64_t n) {
  out_->push_back(type);
  AppendInteger(out_, n);
  out_->append("\r\n", 2);
}

/* Appends s with CR and LF replaced by spaces (status and error lines). */
static void AppendLine(std::string* out, std::string_view s) {
  size_t start = out->size();
  out->append(s);
  for (size_t i = start; i < out->size(); i++) {
    if ((*out)[i] == '\r' || (*out)[i] == '\n') (*out)[i] = ' ';
  }
  out->append("\r\n", 2);
}

void ReplyWriter::Simple(std::string_view s) {
  out_->push_back('+');
  AppendLine(out_, s);
}

void ReplyWriter::Error(std::string_view s) {
  out_->push_back('-');
  AppendLine(out_, s);
}

void ReplyWriter::Integer(int64_t v) { Header(':', v); }

void ReplyWriter::Bulk(std::string_view s) {
  Header('$', static_cast<int64_t>(s.size()));
  out_->append(s);
  out_->append("\r\n", 2);
}

void ReplyWriter::Null() {
  if (protocol_ >= 3) out_->append("_\r\n", 3);
  else out_->append("$-1\r\n", 5);
}

void ReplyWriter::NullArray() {
  if (protocol_ >= 3) out_->append("_\r\n", 3);
  else out_->append("*-1\r\n", 5);
}

void ReplyWriter::Array(size_t n) { Header('*', static_cast<int64_t>(n)); }

void ReplyWriter::Map(size_t n) {
  if (protocol_ >= 3) Header('%', static_cast<int64_t>(n));
  else Header('*', static_cast<int64_t>(n * 2));
}

void ReplyWriter::Set(size_t n) { Header(protocol_ >= 3 ? '~' : '*', static_cast<int64_t>(n)); }

void ReplyWriter::Double(double d) {
  std::string text = FormatDouble(d);
  if (protocol_ >= 3) {
    out_->push_back(',');
    out_->append(text);
    out_->append("\r\n", 2);
  } else {
    Bulk(text);
  }
}

void ReplyWriter::Boolean(bool b) {
  if (protocol_ >= 3) out_->append(b ? "#t\r\n" : "#f\r\n", 4);
  else out_->append(b ? ":1\r\n" : ":0\r\n", 4);
}

void ReplyWriter::Verbatim(std::string_view s, std::string_view format) {
  if (protocol_ < 3 || format.size() != 3) {
    Bulk(s);
    return;
  }
  Header('=', static_cast<int64_t>(s.size() + 4));
  out_->append(format);
  out_->push_back(':');
  out_->append(s);
  out_->append("\r\n", 2);
}

}  // namespace fastpgcache::resp
