// PatchdCore: makes user-controlled strings safe to print on a terminal.

/// Removes terminal control sequences from strings users control before they are printed.
package enum Terminal {
    package static func sanitize(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.filter { s in
                    !(s.value < 0x20 && s != "\n" && s != "\t") && s.value != 0x7f && !(0x80...0x9f).contains(s.value)
                }))
    }
}
