/* password_policy.c - see password_policy.h. The list holds the most common passwords of 10
 * characters or more from public breach corpora (shorter ones fail the length rule anyway), plus
 * the usual keyboard walks and "password"/"qwerty" padding; it is kept short on purpose: its job
 * is to stop the first guesses an attacker tries, not to be a dictionary. */
#include "admin/password_policy.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const common[] = {
    "1234567890",
    "12345678910",
    "123456789a",
    "1234567890a",
    "0123456789",
    "0987654321",
    "9876543210",
    "1111111111",
    "0000000000",
    "2222222222",
    "5555555555",
    "7777777777",
    "9999999999",
    "1212121212",
    "1234512345",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "q1w2e3r4t5",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwertyuiop1",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "asdfghjkl1",
    "asdfghjkl;",
    "zxcvbnm123",
    "qazwsxedc1",
    "qazwsxedcrfv",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "password!!",
    "password01",
    "passw0rd123",
    "p@ssw0rd123",
    "p@ssword123",
    "passwordpassword",
    "mypassword",
    "mypassword1",
    "newpassword",
    "yourpassword",
    "changeme123",
    "changemenow",
    "letmein123",
    "letmeinnow",
    "welcome123",
    "welcome1234",
    "welcome2024",
    "welcome2025",
    "welcome2026",
    "iloveyou12",
    "iloveyou123",
    "iloveyou1234",
    "sunshine123",
    "princess123",
    "football123",
    "baseball123",
    "superman123",
    "batman1234",
    "starwars123",
    "dragon1234",
    "monkey1234",
    "master1234",
    "shadow1234",
    "michael123",
    "jennifer123",
    "abc1234567",
    "abcd123456",
    "abcdefghij",
    "abcdefghijk",
    "abcdefg123",
    "abc123abc123",
    "administrator",
    "admin12345",
    "admin123456",
    "administrator1",
    "adminadmin",
    "rootroot123",
    "trustno1trustno1",
    "1234qwerty",
    "123456789q",
    "123456789z",
    "123qweasdzxc",
    "1qazxsw23edc",
    "zaq12wsxcde3",
    "!qaz2wsx3edc",
    "q1w2e3r4t5y6",
    "aaaaaaaaaa",
    "qqqqqqqqqq",
    "computer123",
    "internet123",
    "samsung123",
    "google1234",
    "facebook123",
    "linkedin123",
    "football1",
    "basketball",
    "basketball1",
    "chocolate1",
    "butterfly1",
    "strawberry",
    "liverpool1",
    "manchester",
    "blink182blink182",
    "whatever123",
    "loveyou123",
    "everything",
    "1234567891",
    "12345678901",
    "123123123123",
    "1231231231",
    "1234554321",
    "11223344556",
    "1122334455",
    "qwe123qwe123",
    "1q2w3e4r5t6y7u",
    "secret1234",
    "secret12345",
    "summer2024",
    "summer2025",
    "summer2026",
    "winter2024",
    "winter2025",
    "winter2026",
    "spring2025",
    "autumn2025",
    "january2025",
    "tollgate123",
    "tollgate1234",
    "apikey1234",
    "correcthorsebatterystaple",
    "correct horse battery staple",
    "password password",
    "letmein!!!",
    "qwerty!!!!",
    "iloveyou!!",
};

/* Code points of a UTF-8 string (bytes that do not start a character are not counted). */
static size_t code_points(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

int tg_password_check(const char *password, const char *email, tg_err_t *err)
{
    size_t len = strlen(password);
    if (len > TG_PASSWORD_MAX_BYTES)
        return tg_errf(err, TG_EINVAL, "password: at most %d bytes.", TG_PASSWORD_MAX_BYTES);
    if (code_points(password) < TG_PASSWORD_MIN_CHARS)
        return tg_errf(err, TG_EINVAL, "password: at least %d characters.", TG_PASSWORD_MIN_CHARS);
    int blank = 1;
    for (const char *p = password; *p != '\0' && blank; p++)
        blank = isspace((unsigned char)*p);
    if (blank)
        return tg_errf(err, TG_EINVAL, "password: must not be only whitespace.");
    if (email != NULL) {
        const char *at = strrchr(email, '@');
        size_t local = at != NULL ? (size_t)(at - email) : strlen(email);
        if (strcasecmp(password, email) == 0 || (local == len && strncasecmp(password, email, len) == 0))
            return tg_errf(err, TG_EINVAL, "password: must not be the email address or its part before the @.");
    }
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        if (strcasecmp(password, common[i]) == 0)
            return tg_errf(err, TG_EINVAL, "password: is one of the most common passwords; choose another.");
    return 0;
}
