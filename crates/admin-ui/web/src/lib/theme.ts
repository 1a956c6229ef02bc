// The dashboard's color scheme: the system's (auto), light or dark, remembered in this browser.
// The stylesheet reads `data-theme` on <html>; without it, `prefers-color-scheme` decides.
export type Theme = "auto" | "light" | "dark";

const KEY = "plinth.theme";
export const THEMES: Theme[] = ["auto", "light", "dark"];

export function currentTheme(): Theme {
  try {
    const saved = localStorage.getItem(KEY);
    return saved === "light" || saved === "dark" ? saved : "auto";
  } catch {
    return "auto";
  }
}

export function applyTheme(theme: Theme = currentTheme()) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  try {
    if (theme === "auto") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, theme);
  } catch {
    // Storage disabled: the choice lasts for this page only.
  }
}
