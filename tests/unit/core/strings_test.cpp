#include "core/strings.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace xmetrics::core {
namespace {

TEST(ValidUtf8, KeepsWellFormedTextAsItIs) {
  EXPECT_EQ(validUtf8("queue.depth"), "queue.depth");
  EXPECT_EQ(validUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(validUtf8(std::string("a\0b", 3)),
            std::string("a\0b", 3));  // NUL is UTF-8 (JSON escapes it)
  EXPECT_EQ(validUtf8(""), "");
}

TEST(ValidUtf8, WritesEveryStrayByteAsAnEscape) {
  EXPECT_EQ(validUtf8("\xff\xfe"), "\\xff\\xfe");                    // never valid
  EXPECT_EQ(validUtf8("a\x80z"), "a\\x80z");                         // a lone continuation byte
  EXPECT_EQ(validUtf8("\xc3"), "\\xc3");                             // truncated at the end
  EXPECT_EQ(validUtf8("\xe2\x82z"), "\\xe2\\x82z");                  // truncated in the middle
  EXPECT_EQ(validUtf8("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(validUtf8("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");           // overlong, 3 bytes
  EXPECT_EQ(validUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a UTF-16 surrogate
  EXPECT_EQ(validUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(validUtf8("\xf5"), "\\xf5");
}

TEST(ValidUtf8, EveryByteStringComesOutValid) {
  // Each 2-byte string: the result holds only ASCII and well-formed sequences, so running it
  // through again changes nothing.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += 7) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      auto once = validUtf8(s);
      EXPECT_EQ(validUtf8(once), once) << a << " " << b;
    }
  }
}

TEST(RedactSecrets, TakesOutEveryOccurrenceOfEachSecretAndUrlCredentials) {
  EXPECT_EQ(redactSecrets("key=abc123 again abc123, app=zz9", {"abc123", "zz9", ""}),
            "key=<redacted> again <redacted>, app=<redacted>");
  EXPECT_EQ(redactSecrets("GET https://user:pa55@proxy:3128/x failed", {}),
            "GET https://<redacted>@proxy:3128/x failed");
  EXPECT_EQ(redactUrlCredentials("http://a@b http://c:d@e/f"),
            "http://<redacted>@b http://<redacted>@e/f");
  EXPECT_EQ(redactSecrets("nothing to hide", {"secret"}), "nothing to hide");
  // A secret that contains the replacement does not loop.
  EXPECT_EQ(redactSecrets("x<redacted>x", {"<redacted>"}), "x<redacted>x");
}

// RFC 4648's test vectors, padded and not; line breaks ignored as Go's decoder does (kubectl
// writes none, a hand-wrapped kubeconfig may have them).
TEST(DecodeBase64, ReadsTheRfcVectorsPaddedOrNot) {
  for (auto [encoded, plain] :
       std::vector<std::pair<std::string, std::string>>{{"", ""},
                                                        {"Zg==", "f"},
                                                        {"Zm8=", "fo"},
                                                        {"Zm9v", "foo"},
                                                        {"Zm9vYg==", "foob"},
                                                        {"Zm9vYmE=", "fooba"},
                                                        {"Zm9vYmFy", "foobar"},
                                                        {"Zg", "f"},
                                                        {"Zm8", "fo"},
                                                        {"Zm9v\nYmFy\r\n", "foobar"},
                                                        {"+/8=", "\xfb\xff"}}) {
    auto decoded = decodeBase64(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, plain) << encoded;
  }
}

// Found by fuzz_kubeconfig: Beast's decoder, sized by its decoded_size(), wrote past the buffer for
// a length that is not a multiple of 4, and stopped silently at the first character outside the
// alphabet. Neither is base64: refused, so a kubeconfig names the field instead of using part of
// it.
TEST(DecodeBase64, RefusesWhatIsNotBase64) {
  for (const std::string& bad : std::vector<std::string>{
           "Z", "Zm9vY", "Zm9v YmFy", "Zm9v*mFy", "Zg=a",
           "Zg=", "Z===", "====", "Zm9vYg==Zg==", "Zm9vYmFy-_", std::string("Zm9v\0YmFy", 9)}) {
    EXPECT_FALSE(decodeBase64(bad)) << bad;
  }
}

}  // namespace
}  // namespace xmetrics::core
