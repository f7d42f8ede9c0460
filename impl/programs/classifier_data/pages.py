"""Low-quality, Common-Crawl-like page text: generated pages, and good documents spoiled the way crawls spoil them.

The generated kinds follow the handout's list of low-quality pages (A4 §2.6: pay walls, placeholders for broken
links, log-in, sign-up and contact forms, pages whose content was media) and add shops, SEO spam, link lists and
forum threads. The spoiled documents take the good sources' own text (a sentence lost in navigation and footers, a
keyword-stuffed spin, a teaser index), so that the classes cannot be told apart by vocabulary alone.
"""

from __future__ import annotations

import random
import re

BRANDS = ["Acme", "Nova", "Zenith", "BestBuyDirect", "ShopSmart", "MegaDeals", "PrimeChoice", "UltraFit", "EcoHome",
          "TechZone", "GlowUp", "FitLife", "CasaBella", "iGadget", "SuperSaver", "ValueMart", "Luxe", "HappyPaws",
          "AutoPro", "KidsWorld"]
PRODUCTS = ["wireless earbuds", "running shoes", "LED desk lamp", "stainless steel water bottle", "yoga mat",
            "phone case", "gaming mouse", "memory foam pillow", "electric toothbrush", "air fryer", "smart watch",
            "bluetooth speaker", "men's leather wallet", "women's summer dress", "car seat covers", "dog chew toy",
            "garden hose", "kitchen knife set", "USB-C charger", "vitamin C serum", "hair straightener",
            "coffee grinder", "camping tent", "baby stroller", "office chair", "4K TV"]
ADJECTIVES = ["cheap", "best", "top rated", "discount", "premium", "free shipping", "original", "2024 new", "hot sale",
              "genuine", "wholesale"]
CITIES = ["London", "Dallas", "Miami", "Toronto", "Sydney", "Chicago", "Houston", "Denver", "Phoenix", "Austin",
          "Leeds", "Dublin"]
SERVICES = ["plumber", "locksmith", "dentist", "roofing contractor", "personal injury lawyer", "car insurance",
            "payday loans", "web design", "SEO agency", "moving company", "carpet cleaning", "window replacement",
            "crypto trading", "weight loss pills"]
NAVIGATION = ["Home", "About Us", "Contact", "Blog", "Shop", "Products", "Services", "FAQ", "Login", "Register",
              "Cart (0)", "My Account", "Search", "Menu", "Categories", "New Arrivals", "Sale", "Gift Cards", "Help",
              "Careers", "Press", "Sitemap", "Terms of Use", "Privacy Policy", "Cookie Settings", "Subscribe",
              "Follow us", "Facebook", "Twitter", "Instagram", "Pinterest", "YouTube", "Share", "Tweet", "Pin it",
              "Email", "Print", "Back to top", "Next »", "« Previous", "Read more", "Load more", "Skip to content"]
FOOTER = ["© {y} {b}. All rights reserved.", "Powered by WordPress", "Designed by {b} Themes",
          "This site uses cookies to improve your experience.",
          "We use cookies. By continuing to browse you agree to our use of cookies. Accept | Decline",
          "Sign up for our newsletter", "Enter your email address", "Subscribe and get 10% off your first order!",
          "Free shipping on orders over $50", "Secure checkout with PayPal, Visa, Mastercard",
          "Customer service: Mon-Fri 9am-5pm", "Related posts", "You may also like", "Leave a comment",
          "Your email address will not be published. Required fields are marked *", "Posted in Uncategorized",
          "Tags: {k}, {k2}, {k3}", "Share this: Facebook Twitter LinkedIn WhatsApp", "Loading...", "Advertisement",
          "Sponsored links", "Copyright {y}", "All trademarks are property of their respective owners.",
          "Page {n} of {m}", "Showing 1-{n} of {m} results"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def navigation(rng: random.Random, count: int | None = None) -> str:
    items = rng.sample(NAVIGATION, count or rng.randint(4, 14))
    return rng.choice(["\n", " | ", "  ", " · ", "\n• "]).join(items)


def footer(rng: random.Random, keywords: list[str], count: int | None = None) -> str:
    lines = rng.sample(FOOTER, count or rng.randint(2, 7))
    return "\n".join(line.format(y=rng.randint(2009, 2024), b=rng.choice(BRANDS), k=rng.choice(keywords),
                                 k2=rng.choice(keywords), k3=rng.choice(keywords), n=rng.randint(2, 20),
                                 m=rng.randint(21, 400)) for line in lines)


def shop_page(rng: random.Random, words: list[str]) -> str:
    brand, product = rng.choice(BRANDS), rng.choice(PRODUCTS)
    lines = [navigation(rng), (f"{brand} {product.title()} - {rng.choice(ADJECTIVES).title()} {product.title()} "
                              f"Online | {brand}")]
    for _ in range(rng.randint(3, 12)):
        item, price = rng.choice(PRODUCTS), rng.randint(5, 400) + 0.99
        lines.append(rng.choice([f"{rng.choice(ADJECTIVES).title()} {item.title()} ${price:.2f}",
                                 f"{item.title()}\n${price:.2f} ${price * 1.4:.2f}\nAdd to cart",
                                 f"★★★★☆ ({rng.randint(3, 2000)}) {item} - {rng.choice(ADJECTIVES)}",
                                 f"{item.title()} | In stock | Ships in 24h | Buy now"]))
    if rng.random() < 0.5:
        lines.append(f"Description: {rng.choice(ADJECTIVES)} {product}. High quality. {rng.choice(ADJECTIVES).title()} "
                     f"price. 100% satisfaction guarantee. Size: S M L XL. Color: black, white, red. Material: "
                     f"{rng.choice(['cotton', 'plastic', 'ABS', 'alloy'])}.")
    lines.append(footer(rng, [product, brand, rng.choice(ADJECTIVES)]))
    return "\n".join(lines)


def seo_page(rng: random.Random, words: list[str]) -> str:
    service, city = rng.choice(SERVICES), rng.choice(CITIES)
    keywords = [f"{service} {city}", f"best {service} in {city}", f"{service} near me", f"cheap {service} {city}",
                f"{city} {service} services", f"affordable {service}"]

    def k() -> str:
        return rng.choice(keywords)

    sentences = [rng.choice([f"Looking for the {k()}? We are the {k()} you can trust.",
                             f"Our {k()} team offers {k()} at the best prices.",
                             f"Call now for {k()}! {k().title()} available 24/7.",
                             f"Why choose us for {k()}? Because we are number one {k()}.",
                             f"{k().title()}, {k()}, {k()} and {k()}.",
                             f"Get a free quote for {k()} today. Satisfaction guaranteed.",
                             " ".join(rng.sample(words, 6)) + f" {k()}."])
                 for _ in range(rng.randint(5, 14))]
    return "\n".join([navigation(rng), f"{k().title()} | {rng.choice(BRANDS)}", " ".join(sentences),
                      f"Call us: ({rng.randint(200, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                      footer(rng, keywords)])


def form_page(rng: random.Random, words: list[str]) -> str:
    """A page that is all form, wall or placeholder: log-in, sign-up, contact, pay wall, 404, age gate, cookie wall,
    media player, captcha, parked domain."""
    brand = rng.choice(BRANDS)
    kinds = {
        "login": ["Sign in", "Email or username", "Password", "Remember me", "Forgot your password?", "Log in",
                  "Don't have an account? Sign up", "Or continue with Google", "Or continue with Facebook"],
        "signup": ["Create your account", "First name", "Last name", "Email", "Password", "Confirm password",
                   "I agree to the Terms of Service and Privacy Policy", "Sign up", "Already have an account? Log in"],
        "contact": ["Contact us", "Name *", "Email *", "Phone", "Subject", "Message *", "Send",
                    "We will get back to you within 24 hours.",
                    f"Address: {rng.randint(1, 999)} Main Street, {rng.choice(CITIES)}"],
        "paywall": [f"Subscribe to {brand} to continue reading",
                    "You have reached your limit of free articles this month.", "Already a subscriber? Sign in",
                    "Get unlimited access for $1 a week", "Cancel anytime.", "Subscribe now"],
        "404": ["404 Not Found", "Oops! The page you are looking for does not exist.",
                "It may have been moved or deleted.", "Go back to the homepage", "Search our site", "Error 404"],
        "age": ["You must be 18 or older to enter this site.", "Are you over 18?", "Yes, enter", "No, leave",
                "By entering you agree to our terms."],
        "cookie": ["We value your privacy", ("We and our partners use cookies and similar technologies to store and "
                   "access information on your device."), "Accept all", "Reject all", "Manage preferences",
                   "Strictly necessary cookies", "Performance cookies", "Targeting cookies"],
        "media": [f"Watch: {' '.join(rng.sample(words, 4)).title()}", "Video player is loading.", "Play Video",
                  "0:00 / 3:41", "Loaded: 0%", "Photo gallery (24 photos)", "Click to enlarge", "Image 1 of 24",
                  "Next image"],
        "captcha": ["Please verify you are a human", "Checking your browser before accessing the website.",
                    "This process is automatic.",
                    "Ray ID: " + "".join(rng.choice("0123456789abcdef") for _ in range(16)),
                    "Performance & security by Cloudflare"],
        "parked": [f"{brand.lower()}{rng.randint(1, 99)}.com is for sale!", "Buy this domain", "Related searches:",
                   *[rng.choice(SERVICES).title() for _ in range(5)], "Inquire now", "This domain may be for sale."],
    }
    body = kinds[rng.choice(sorted(kinds))]
    lines = [navigation(rng)] if rng.random() < 0.7 else []
    lines += rng.sample(body, rng.randint(max(3, len(body) - 3), len(body)))
    lines.append(footer(rng, [brand]))
    return "\n".join(lines)


def link_list_page(rng: random.Random, words: list[str], titles: list[str]) -> str:
    lines = [navigation(rng), rng.choice(["Archives", "Categories", "Popular Posts", "Recent Posts", "Sitemap", "Links",
                                          "Tags", "Top searches"])]
    for _ in range(rng.randint(10, 40)):
        title = rng.choice([rng.choice(titles), " ".join(rng.sample(words, rng.randint(2, 5))).title(),
                            f"{rng.choice(MONTHS)} {rng.randint(2005, 2024)}",
                            f"{rng.choice(PRODUCTS).title()} ({rng.randint(1, 300)})",
                            f"{rng.choice(SERVICES).title()} {rng.choice(CITIES)}"])
        lines.append(rng.choice(["", "• ", "» ", "- "]) + title)
    lines.append(footer(rng, words[:50]))
    return "\n".join(lines)


def forum_page(rng: random.Random, words: list[str], snippets: list[str]) -> str:
    lines = [navigation(rng), f"Forum » {' '.join(rng.sample(words, 2)).title()} » Thread",
             f"Re: {' '.join(rng.sample(words, 4))}"]
    for _ in range(rng.randint(2, 8)):
        user = rng.choice(["user", "guest", "mike", "sarah", "xXgamerXx", "admin", "jdoe", "anon"])
        user += str(rng.randint(1, 9999))
        lines += [user, f"Posts: {rng.randint(1, 5000)} | Joined: {rng.choice(MONTHS)} {rng.randint(2005, 2023)}",
                  rng.choice(snippets), rng.choice(["Quote", "Reply", "Like (3)", "Report", "Thanks!", "+1", "bump"])]
    lines.append(footer(rng, words[:30]))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- spoiled documents


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)) if len(s.split()) > 3]


def lost_in_boilerplate(rng: random.Random, text: str, words: list[str]) -> str:
    """One or two sentences of a good document among navigation, related links and footer lines."""
    found = sentences(text) or [text[:200]]
    start = rng.randrange(len(found))
    core = " ".join(found[start:start + rng.randint(1, 2)])
    if rng.random() < 0.5:  # cut to a teaser
        core = " ".join(core.split()[:rng.randint(8, 25)]) + rng.choice(["...", " …", " [...]", " Read more »",
                                                                         "… Continue reading"])
    related = [" ".join(rng.sample(words, rng.randint(3, 6))).title() for _ in range(rng.randint(3, 10))]
    parts = [navigation(rng), core, "Related:", *related, footer(rng, words[:40])]
    if rng.random() < 0.5:
        parts.insert(1, footer(rng, words[:40], 2))
    return "\n".join(parts)


def keyword_stuffed(rng: random.Random, text: str, words: list[str]) -> str:
    """A good text spun for SEO: sentences shuffled and cut short, a keyword phrase forced into each."""
    found = sentences(text)
    rng.shuffle(found)
    keyword = " ".join(rng.sample([w for w in words if len(w) > 4] or words, 2))
    keyword2 = f"{rng.choice(ADJECTIVES)} {keyword}"
    spun = []
    for sentence in found[:rng.randint(3, 10)]:
        kept = sentence.split()
        kept = kept[:rng.randint(max(3, len(kept) // 3), len(kept))]
        kept.insert(rng.randint(0, len(kept)), rng.choice([keyword, keyword2, keyword.upper(), f"buy {keyword}",
                                                           f"{keyword} online"]))
        spun.append(" ".join(kept) + rng.choice([".", "!", " -", "..."]))
    return (f"{keyword2.title()} | {keyword.title()} {rng.choice(ADJECTIVES).title()}\n" + " ".join(spun)
            + f"\nTags: {keyword}, {keyword2}, {keyword} {rng.randint(2015, 2024)}")


def teaser_index(rng: random.Random, texts: list[str]) -> str:
    """A blog or news index page: the titles and first words of several articles."""
    lines = [navigation(rng)]
    words = ["news"]
    for text in rng.sample(texts, min(len(texts), rng.randint(4, 10))):
        words = text.split() or words
        start = rng.randrange(max(1, len(words) - 20))
        lines += [" ".join(words[start:start + rng.randint(3, 7)]).title(),
                  (f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(2010, 2024)} · "
                  f"{rng.randint(0, 99)} comments"),
                  " ".join(words[start + 7:start + 7 + rng.randint(8, 20)]) + " ... Read more"]
    lines.append(footer(rng, words[:20]))
    return "\n".join(lines)
