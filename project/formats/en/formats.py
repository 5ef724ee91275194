# Staff pages show times to the second, in ISO order (UTC): a generation's created/started/finished times a few
# seconds apart must be told apart. Django's English locale shows "Dec. 6, 2026, 6:45 p.m.".
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
