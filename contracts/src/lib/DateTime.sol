// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {DateMalformed} from "./Errors.sol";

/**
 * @title DateTime
 * @notice Calendar dates to Unix seconds, for certificate validity (X.509
 *         UTCTime / GeneralizedTime, RFC 5280 §4.1.2.5) and collateral JSON
 *         dates (RFC 3339 §5.6, as Intel writes them: `YYYY-MM-DDTHH:MM:SSZ`).
 * @dev Days from civil date by Howard Hinnant's algorithm ("chrono-Compatible
 *      Low-Level Date Algorithms", days_from_civil). Every field is range
 *      checked (day against the month's length too), so no date rolls over
 *      into another. Anything else is DateMalformed: fail closed.
 */
library DateTime {
    function digits(bytes memory b, uint256 p, uint256 n) private pure returns (uint256 v) {
        for (uint256 i = 0; i < n; i++) {
            uint8 c = uint8(b[p + i]);
            if (c < 0x30 || c > 0x39) revert DateMalformed();
            v = v * 10 + (c - 0x30);
        }
    }

    function daysInMonth(uint256 y, uint256 m) private pure returns (uint256) {
        if (m == 2) return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28;
        if (m == 4 || m == 6 || m == 9 || m == 11) return 30;
        return 31;
    }

    /// @notice Unix seconds of a UTC calendar instant; reverts on out-of-range fields.
    function toUnix(uint256 y, uint256 m, uint256 d, uint256 hh, uint256 mm, uint256 ss) internal pure returns (uint64) {
        if (y < 1970 || m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m) || hh > 23 || mm > 59 || ss > 59) revert DateMalformed();
        int256 yy = int256(y) - (m <= 2 ? int256(1) : int256(0));
        int256 era = yy / 400;
        int256 yoe = yy - era * 400;
        int256 mp = (int256(m) + 9) % 12;
        int256 doy = (153 * mp + 2) / 5 + int256(d) - 1;
        int256 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        int256 dayCount = era * 146097 + doe - 719468;
        return uint64(uint256(dayCount) * 86400 + hh * 3600 + mm * 60 + ss);
    }

    /// @notice X.509 time: tag 0x17 UTCTime `YYMMDDHHMMSSZ` (RFC 5280: YY < 50 is 20YY) or 0x18 GeneralizedTime `YYYYMMDDHHMMSSZ`.
    function fromAsn1(bytes memory b, uint256 tag, uint256 p, uint256 end) internal pure returns (uint64) {
        uint256 y;
        if (tag == 0x17) {
            if (end - p != 13 || b[end - 1] != "Z") revert DateMalformed();
            y = digits(b, p, 2);
            y += y < 50 ? 2000 : 1900;
            p += 2;
        } else if (tag == 0x18) {
            if (end - p != 15 || b[end - 1] != "Z") revert DateMalformed();
            y = digits(b, p, 4);
            p += 4;
        } else {
            revert DateMalformed();
        }
        return toUnix(y, digits(b, p, 2), digits(b, p + 2, 2), digits(b, p + 4, 2), digits(b, p + 6, 2), digits(b, p + 8, 2));
    }

    /// @notice RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` in `b[p:end]` (no fraction, no offset: Intel's form).
    function fromRfc3339(bytes memory b, uint256 p, uint256 end) internal pure returns (uint64) {
        if (end - p != 20 || b[p + 4] != "-" || b[p + 7] != "-" || b[p + 10] != "T" || b[p + 13] != ":" || b[p + 16] != ":" || b[p + 19] != "Z") {
            revert DateMalformed();
        }
        return toUnix(digits(b, p, 4), digits(b, p + 5, 2), digits(b, p + 8, 2), digits(b, p + 11, 2), digits(b, p + 14, 2), digits(b, p + 17, 2));
    }
}
