#include "core/label_selector.hpp"

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

// The lexer and parser follow k8s.io/apimachinery/pkg/labels/selector.go token for token (Lexer,
// Parser.parse, parseRequirement, parseValues, parseIdentifiersList, parseExactValue), so that
// every selector the kube-apiserver side accepts is accepted here with the same meaning, quirks
// included:
//  * `k=`, `k==`, `k!=` take the empty value; `k in ()` is `k in ("")`; `(,a)`, `(a,)` and `(,,,)`
//    add the empty value, yet `(a,,)` and `(,,)` are errors.
//  * `in` and `notin` are keywords only where an operator is expected; elsewhere they are plain
//    keys or values (`in in (in)` is valid).
// Deliberate differences, all rejections of input apimachinery would take:
//  * `>` and `<` (integer comparisons) are refused: no metrics backend can express them, and a
//    metav1.LabelSelector (what an HPA carries) cannot produce them.
//  * apimachinery's lexer stops at a NUL byte as if the text ended there; here NUL is an ordinary
//    byte, so it makes the key or value invalid instead of silently truncating the selector.

namespace xmetrics::core {

namespace {

enum class TokenKind {
  kEnd,
  kIdentifier,
  kIn,
  kNotIn,
  kComma,
  kOpenParen,
  kCloseParen,
  kBang,
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kGreaterThan,
  kLessThan,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view text;
  std::size_t position = 0;  // byte offset of the token's first character
};

bool isWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool isSpecialSymbol(char c) {
  switch (c) {
    case '=':
    case '!':
    case '(':
    case ')':
    case ',':
    case '>':
    case '<':
      return true;
    default:
      return false;
  }
}

TokenKind symbolKind(char c) {
  switch (c) {
    case '=':
      return TokenKind::kEquals;
    case '!':
      return TokenKind::kBang;
    case '(':
      return TokenKind::kOpenParen;
    case ')':
      return TokenKind::kCloseParen;
    case ',':
      return TokenKind::kComma;
    case '>':
      return TokenKind::kGreaterThan;
    default:
      return TokenKind::kLessThan;
  }
}

// Always ends with one kEnd token, so the parser can look one token ahead without bounds checks.
std::vector<Token> lex(std::string_view text) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (true) {
    while (i < text.size() && isWhitespace(text[i])) {
      ++i;
    }
    if (i == text.size()) {
      tokens.push_back({TokenKind::kEnd, {}, i});
      return tokens;
    }
    const std::size_t start = i;
    if (isSpecialSymbol(text[i])) {
      // apimachinery takes the longest run of symbols that is still a token; the only two-byte
      // tokens are "==" and "!=", so "a!==b" lexes as `a`, `!=`, `=`, `b`.
      if (i + 1 < text.size() && text[i + 1] == '=' && (text[i] == '=' || text[i] == '!')) {
        const TokenKind kind = text[i] == '=' ? TokenKind::kDoubleEquals : TokenKind::kNotEquals;
        tokens.push_back({kind, text.substr(i, 2), start});
        i += 2;
      } else {
        tokens.push_back({symbolKind(text[i]), text.substr(i, 1), start});
        ++i;
      }
      continue;
    }
    while (i < text.size() && !isSpecialSymbol(text[i]) && !isWhitespace(text[i])) {
      ++i;
    }
    const std::string_view word = text.substr(start, i - start);
    TokenKind kind = TokenKind::kIdentifier;
    if (word == "in") {
      kind = TokenKind::kIn;
    } else if (word == "notin") {
      kind = TokenKind::kNotIn;
    }
    tokens.push_back({kind, word, start});
  }
}

// Where apimachinery reads in its "Values" context, the keywords are ordinary identifiers.
bool isIdentifier(const Token& token) {
  return token.kind == TokenKind::kIdentifier || token.kind == TokenKind::kIn ||
         token.kind == TokenKind::kNotIn;
}

// Quotes text for an error message; the text is user input, so control bytes are escaped and
// long runs cut short to keep the message readable.
std::string quote(std::string_view text) {
  constexpr std::size_t kMaxShown = 64;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (text.size() > kMaxShown) {
    out += "...";
  }
  out.push_back('"');
  return out;
}

std::string describe(const Token& token) {
  if (token.kind == TokenKind::kEnd) {
    return "end of input";
  }
  if (isIdentifier(token)) {
    return quote(token.text);
  }
  return "'" + std::string(token.text) + "'";
}

bool isAlphanumeric(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the qualifiedNameFmt of
// k8s.io/apimachinery/pkg/util/validation/validation.go; label values use it too.
bool isQualifiedNameText(std::string_view text) {
  if (text.empty() || !isAlphanumeric(text.front()) || !isAlphanumeric(text.back())) {
    return false;
  }
  return std::ranges::all_of(
      text, [](char c) { return isAlphanumeric(c) || c == '-' || c == '_' || c == '.'; });
}

// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, dns1123SubdomainFmt.
bool isDnsSubdomainText(std::string_view text) {
  const auto lowerOrDigit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view label =
        text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || !lowerOrDigit(label.front()) || !lowerOrDigit(label.back()) ||
        !std::ranges::all_of(label, [&](char c) { return lowerOrDigit(c) || c == '-'; })) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

constexpr std::size_t kMaxNameLength = 63;     // qualifiedNameMaxLength, LabelValueMaxLength
constexpr std::size_t kMaxPrefixLength = 253;  // DNS1123SubdomainMaxLength

constexpr std::string_view kCharacterRule =
    "consist of alphanumeric characters, '-', '_' or '.', and start and end with an alphanumeric "
    "character";

// validation.IsQualifiedName: what is wrong with a label key, or nothing.
std::optional<std::string> keyProblem(std::string_view key) {
  std::vector<std::string> problems;
  std::string_view name = key;
  if (const std::size_t slash = key.find('/'); slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) {
      return "a label key is a name with an optional DNS subdomain prefix and one '/' (e.g. "
             "'MyName' or 'example.com/MyName')";
    }
    const std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) {
      problems.emplace_back("prefix part must be non-empty");
    } else {
      if (prefix.size() > kMaxPrefixLength) {
        problems.emplace_back("prefix part must be no more than 253 characters");
      }
      if (!isDnsSubdomainText(prefix)) {
        problems.emplace_back(
            "prefix part must be a lowercase RFC 1123 subdomain: lower case alphanumeric "
            "characters, '-' or '.', starting and ending with an alphanumeric character (e.g. "
            "'example.com')");
      }
    }
  }
  if (name.empty()) {
    problems.emplace_back("name part must be non-empty");
  } else {
    if (name.size() > kMaxNameLength) {
      problems.emplace_back("name part must be no more than 63 characters");
    }
    if (!isQualifiedNameText(name)) {
      problems.emplace_back("name part must " + std::string(kCharacterRule) +
                            " (e.g. 'MyName', 'my.name', '123-abc')");
    }
  }
  if (problems.empty()) {
    return std::nullopt;
  }
  std::string joined;
  for (const auto& problem : problems) {
    joined += joined.empty() ? "" : "; ";
    joined += problem;
  }
  return joined;
}

// validation.IsValidLabelValue: what is wrong with a label value, or nothing. Empty is valid.
std::optional<std::string> valueProblem(std::string_view value) {
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.size() > kMaxNameLength) {
    return "must be no more than 63 characters";
  }
  if (!isQualifiedNameText(value)) {
    return "must be empty or " + std::string(kCharacterRule) +
           " (e.g. 'MyValue', 'my_value', '12345')";
  }
  return std::nullopt;
}

void appendRequirement(const SelectorRequirement& requirement, std::string& out) {
  const auto appendValues = [&] {
    out += " (";
    for (std::size_t i = 0; i < requirement.values.size(); ++i) {
      out += i == 0 ? "" : ",";
      out += requirement.values[i];
    }
    out += ")";
  };
  const std::string_view single =
      requirement.values.empty() ? std::string_view{} : std::string_view{requirement.values[0]};
  switch (requirement.op) {
    case SelectorOperator::kEquals:
      out += requirement.key;
      out += "=";
      out += single;
      break;
    case SelectorOperator::kNotEquals:
      out += requirement.key;
      out += "!=";
      out += single;
      break;
    case SelectorOperator::kIn:
      out += requirement.key;
      out += " in";
      appendValues();
      break;
    case SelectorOperator::kNotIn:
      out += requirement.key;
      out += " notin";
      appendValues();
      break;
    case SelectorOperator::kExists:
      out += requirement.key;
      break;
    case SelectorOperator::kDoesNotExist:
      out += "!";
      out += requirement.key;
      break;
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : tokens_(lex(text)) {}

  std::expected<std::vector<SelectorRequirement>, SelectorError> parse() {
    std::vector<SelectorRequirement> requirements;
    if (peek().kind == TokenKind::kEnd) {
      return requirements;  // empty or blank text: the selector that matches everything
    }
    while (true) {
      const Token& start = peek();
      if (!isIdentifier(start) && start.kind != TokenKind::kBang) {
        return std::unexpected(error(start, requirements.empty()
                                                ? "expected a label key or '!'"
                                                : "expected a label key or '!' after ','"));
      }
      auto requirement = parseRequirement();
      if (!requirement) {
        return std::unexpected(std::move(requirement.error()));
      }
      requirements.push_back(std::move(*requirement));
      const Token& separator = next();
      if (separator.kind == TokenKind::kEnd) {
        return requirements;
      }
      if (separator.kind != TokenKind::kComma) {
        std::string shown;
        appendRequirement(requirements.back(), shown);
        return std::unexpected(
            error(separator, "expected ',' or end of input after requirement " + quote(shown)));
      }
    }
  }

 private:
  const Token& peek() const { return tokens_[index_]; }

  const Token& next() {
    const Token& token = tokens_[index_];
    if (token.kind != TokenKind::kEnd) {
      ++index_;
    }
    return token;
  }

  static SelectorError error(const Token& at, std::string_view expected) {
    return SelectorError{at.position, std::string(expected) + ", found " + describe(at) +
                                          " at position " + std::to_string(at.position)};
  }

  static SelectorError invalid(const Token& at, std::string message) {
    message += " at position " + std::to_string(at.position);
    return SelectorError{at.position, std::move(message)};
  }

  std::expected<SelectorRequirement, SelectorError> parseRequirement() {
    bool absent = false;
    const Token* keyToken = &next();
    if (keyToken->kind == TokenKind::kBang) {
      absent = true;
      keyToken = &next();
    }
    if (!isIdentifier(*keyToken)) {
      return std::unexpected(error(*keyToken, "expected a label key after '!'"));
    }
    if (auto problem = keyProblem(keyToken->text)) {
      return std::unexpected(
          invalid(*keyToken, "invalid label key " + quote(keyToken->text) + ": " + *problem));
    }
    SelectorRequirement requirement;
    requirement.key = std::string(keyToken->text);

    const Token& after = peek();
    if (after.kind == TokenKind::kEnd || after.kind == TokenKind::kComma) {
      requirement.op = absent ? SelectorOperator::kDoesNotExist : SelectorOperator::kExists;
      return requirement;
    }
    if (absent) {
      return std::unexpected(error(after, "expected ',' or end of input after \"!" +
                                              requirement.key +
                                              "\" ('!key' only requires the label to be absent)"));
    }

    const Token& op = next();
    std::expected<void, SelectorError> values;
    switch (op.kind) {
      case TokenKind::kIn:
      case TokenKind::kNotIn:
        requirement.op =
            op.kind == TokenKind::kIn ? SelectorOperator::kIn : SelectorOperator::kNotIn;
        values = parseValueSet(op, requirement);
        break;
      case TokenKind::kEquals:
      case TokenKind::kDoubleEquals:
      case TokenKind::kNotEquals:
        requirement.op = op.kind == TokenKind::kNotEquals ? SelectorOperator::kNotEquals
                                                          : SelectorOperator::kEquals;
        values = parseExactValue(op, requirement);
        break;
      case TokenKind::kGreaterThan:
      case TokenKind::kLessThan:
        return std::unexpected(invalid(
            op, "operator '" + std::string(op.text) + "' after key " + quote(requirement.key) +
                    " is not supported (use =, ==, !=, in, notin, a bare key or '!key')"));
      default:
        return std::unexpected(error(op,
                                     "expected an operator (=, ==, !=, in, notin), ',' or end "
                                     "of input after key " +
                                         quote(requirement.key)));
    }
    if (!values) {
      return std::unexpected(std::move(values.error()));
    }
    std::ranges::sort(requirement.values);
    const auto duplicates = std::ranges::unique(requirement.values);
    requirement.values.erase(duplicates.begin(), duplicates.end());
    return requirement;
  }

  std::expected<void, SelectorError> addValue(const Token& token, SelectorRequirement& into) {
    if (auto problem = valueProblem(token.text)) {
      return std::unexpected(invalid(token, "invalid value " + quote(token.text) + " for key " +
                                                quote(into.key) + ": " + *problem));
    }
    into.values.emplace_back(token.text);
    return {};
  }

  // parseValues + parseIdentifiersList: `( v1, v2 )`, where empty slots are the empty value.
  std::expected<void, SelectorError> parseValueSet(const Token& op, SelectorRequirement& into) {
    const Token& open = next();
    if (open.kind != TokenKind::kOpenParen) {
      return std::unexpected(error(
          open, "expected '(' after '" + std::string(op.text) + "' for key " + quote(into.key)));
    }
    const Token& first = peek();
    if (first.kind == TokenKind::kCloseParen) {
      next();
      into.values.emplace_back();
      return {};
    }
    if (!isIdentifier(first) && first.kind != TokenKind::kComma) {
      return std::unexpected(
          error(first, "expected a value, ',' or ')' after '(' for key " + quote(into.key)));
    }
    while (true) {
      const Token& token = next();
      if (isIdentifier(token)) {
        if (auto added = addValue(token, into); !added) {
          return added;
        }
        const Token& after = peek();
        if (after.kind == TokenKind::kComma) {
          continue;
        }
        if (after.kind == TokenKind::kCloseParen) {
          break;
        }
        return std::unexpected(error(after, "expected ',' or ')' after value " + quote(token.text) +
                                                " of key " + quote(into.key)));
      }
      if (token.kind == TokenKind::kComma) {
        if (into.values.empty()) {
          into.values.emplace_back();  // "(,"
        }
        const Token& after = peek();
        if (after.kind == TokenKind::kCloseParen) {
          into.values.emplace_back();  // ",)"
          break;
        }
        if (after.kind == TokenKind::kComma) {
          next();
          into.values.emplace_back();  // ",,"
        }
        continue;
      }
      return std::unexpected(
          error(token, "expected a value or ',' in the values of key " + quote(into.key)));
    }
    next();  // the ')' seen above
    return {};
  }

  std::expected<void, SelectorError> parseExactValue(const Token& op, SelectorRequirement& into) {
    const Token& token = peek();
    if (token.kind == TokenKind::kEnd || token.kind == TokenKind::kComma) {
      into.values.emplace_back();
      return {};
    }
    next();
    if (!isIdentifier(token)) {
      return std::unexpected(error(token, "expected a value after '" + std::string(op.text) +
                                              "' for key " + quote(into.key)));
    }
    return addValue(token, into);
  }

  std::vector<Token> tokens_;
  std::size_t index_ = 0;
};

}  // namespace

std::expected<LabelSelector, SelectorError> LabelSelector::parse(std::string_view text) {
  auto requirements = Parser(text).parse();
  if (!requirements) {
    return std::unexpected(std::move(requirements.error()));
  }
  // apimachinery sorts by key only (and not stably); the operator and values break ties so equal
  // selectors compare and print equal.
  std::ranges::sort(*requirements, [](const SelectorRequirement& a, const SelectorRequirement& b) {
    return std::tie(a.key, a.op, a.values) < std::tie(b.key, b.op, b.values);
  });
  LabelSelector selector;
  if (!requirements->empty()) {
    selector.requirements_ =
        std::make_shared<const std::vector<SelectorRequirement>>(std::move(*requirements));
  }
  return selector;
}

const std::vector<SelectorRequirement>& LabelSelector::requirements() const {
  static const std::vector<SelectorRequirement> kNone;
  return requirements_ ? *requirements_ : kNone;
}

bool LabelSelector::matches(const Labels& labels) const {
  return std::ranges::all_of(requirements(), [&](const SelectorRequirement& requirement) {
    const auto found = labels.find(requirement.key);
    const bool present = found != labels.end();
    const auto hasValue = [&] {
      return present && std::ranges::binary_search(requirement.values, found->second);
    };
    switch (requirement.op) {
      case SelectorOperator::kEquals:
      case SelectorOperator::kIn:
        return hasValue();
      case SelectorOperator::kNotEquals:
      case SelectorOperator::kNotIn:
        return !hasValue();  // an absent label is "not equal", as in apimachinery
      case SelectorOperator::kExists:
        return present;
      case SelectorOperator::kDoesNotExist:
        return !present;
    }
    return false;
  });
}

std::string LabelSelector::canonical() const {
  std::string out;
  for (const auto& requirement : requirements()) {
    if (!out.empty()) {
      out += ",";
    }
    appendRequirement(requirement, out);
  }
  return out;
}

}  // namespace xmetrics::core
