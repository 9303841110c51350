// Errors raised by the extension's C++ code. Pure C++: no PostgreSQL headers.
// The SQL-callable shims catch these and report them with ereport(), using the
// SQLSTATE carried here, after every C++ destructor has run.
#pragma once

#include <stdexcept>
#include <string>

namespace fastpgcache {

class CacheError : public std::runtime_error {
 public:
  // sqlstate: five characters, e.g. "22004".
  CacheError(const char *sqlstate, std::string message, std::string detail = {}, std::string hint = {})
      : std::runtime_error(std::move(message)), detail_(std::move(detail)), hint_(std::move(hint)) {
    for (int i = 0; i < 5; i++) sqlstate_[i] = sqlstate[i];
    sqlstate_[5] = '\0';
  }
  const char *sqlstate() const noexcept { return sqlstate_; }
  const std::string &detail() const noexcept { return detail_; }
  const std::string &hint() const noexcept { return hint_; }

 private:
  char sqlstate_[6];
  std::string detail_;
  std::string hint_;
};

// SQLSTATEs used by the extension (see PostgreSQL's errcodes.txt).
namespace sqlstate {
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kNullValueNotAllowed = "22004";
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kCharacterNotInRepertoire = "22021";
inline constexpr const char *kDatetimeFieldOverflow = "22008";
inline constexpr const char *kArraySubscriptError = "2202E";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kDatatypeMismatch = "42804";
inline constexpr const char *kOutOfMemory = "53200";
inline constexpr const char *kSerializationFailure = "40001";
inline constexpr const char *kInvalidTextRepresentation = "22P02";
inline constexpr const char *kNumericValueOutOfRange = "22003";
inline constexpr const char *kProgramLimitExceeded = "54000";
inline constexpr const char *kInternalError = "XX000";
}  // namespace sqlstate

}  // namespace fastpgcache
