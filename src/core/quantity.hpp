#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xmetrics::core {

// Renders a value as a Kubernetes resource.Quantity in canonical DecimalSI form, exactly as
// k8s.io/apimachinery/pkg/api/resource writes it: an integer mantissa (no fraction digits) with the
// largest decimal suffix (n u m "" k M G T P E) that loses no precision: 1.5 -> "1500m",
// 2000 -> "2k", 0.0015 -> "1500u", -2.5 -> "-2500m", 0 -> "0".
// The double is first turned into its shortest round-trip decimal form; magnitudes below 1n are
// rounded up to 1n as apimachinery rounds on parse. NaN and infinities have no Quantity form and
// must be rejected before calling (they return "0").
std::string formatQuantity(double value);

// Reads a Kubernetes quantity as written in objects ("9", "500m", "1.5k", "2Ki", "1e3"): a signed
// decimal number, then a DecimalSI suffix (n u m k M G T P E), a BinarySI one (Ki Mi Gi Ti Pi Ei)
// or a decimal exponent. nullopt for anything else. Precision is a double's, enough for reading
// HPA targets and explaining them; the API server's own arithmetic is in milli-units.
std::optional<double> parseQuantity(std::string_view text);

}  // namespace xmetrics::core
